import Devices
import FUSE
import Logging
import VirtIO
import SystemSupport
import VhostUser

/// One `SharedDirectory` served to QEMU's vhost-user-fs-device: our FUSE server over the host
/// directory (confined to it, read-only if asked), our virtio-fs device model, and a vhost-user
/// server for it on `socketPath`. `stop()` joins its thread and removes the socket; the FUSE
/// server's descriptors close when the last reference goes.
final class VirtioFsShare: Sendable {
    let tag: String
    let socketPath: String
    private let server: VhostUserServer

    init(_ share: SharedDirectory, socketPath: String, traffic: DeviceTraffic, logger: Logger) throws(HypervisorError) {
        let (device, fileSystem) = try makeVirtioFsDeviceAndFileSystem(share, traffic: traffic, logger: logger)
        let root = share.hostPath
        do {
            // Like virtiofsd: the server thread gets a mount namespace of its own whose root is
            // the share, before its seccomp filter and before QEMU can send a request.
            server = try VhostUserServer(
                path: socketPath, device: device, queueCount: device.queueCount, logger: logger,
                threadSetup: {
                    try ThreadConfinement.enterDirectory(root)
                    try fileSystem.reopenRootAfterPivot()
                })
        } catch {
            throw .vhostUser("\(error)")
        }
        tag = share.tag
        self.socketPath = socketPath
    }

    var frontendState: VhostUserServer.FrontendState { server.frontendState }
    var isActive: Bool { server.isActive }

    func stop() { server.stop() }
}
