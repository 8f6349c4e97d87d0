import Devices
import Logging
import VhostUser

/// One read-only disk image for QEMU: our `BlkDevice` over the image (opened O_RDONLY here, in
/// the shim; QEMU never sees the file), served over vhost-user on `socketPath`. QEMU's
/// `vhost-user-blk` device (`arguments(id:)`) reads the configuration with GET_CONFIG and hands
/// us its single request queue. `stop()` joins the server thread and removes the socket.
final class VhostUserBlk: Sendable {
    let imagePath: String
    let socketPath: String
    let server: VhostUserServer

    /// Opens `imagePath` read-only (its size must be a multiple of 512) and listens on
    /// `socketPath`; QEMU may connect at once. `serial` is what the guest's GET_ID returns.
    init(imagePath: String, socketPath: String, serial: String = "kata-swift", logger: Logger) throws(HypervisorError) {
        let backend: FileBlockBackend
        do {
            backend = try FileBlockBackend(path: imagePath)
        } catch {
            throw .invalidConfig("\(error)")
        }
        let device = BlkDevice(backend: backend, serial: serial, logger: logger)
        do {
            server = try VhostUserServer(path: socketPath, device: device, queueCount: 1, logger: logger)
        } catch {
            throw .vhostUser("\(error)")
        }
        self.imagePath = imagePath
        self.socketPath = socketPath
    }

    /// QEMU's arguments for this disk: a socket chardev named `id` and the device on it
    /// (virtio-mmio under microvm). QEMU needs guest memory in a shared memfd.
    func arguments(id: String) -> [String] { Self.arguments(id: id, socketPath: socketPath) }

    static func arguments(id: String, socketPath: String) -> [String] {
        ["-chardev", "socket,id=\(id),path=\(QEMUCommand.escaped(socketPath))", "-device", "vhost-user-blk,chardev=\(id)"]
    }

    var isActive: Bool { server.isActive }

    func stop() { server.stop() }
}
