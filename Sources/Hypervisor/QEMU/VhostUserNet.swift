import Devices
import Logging
import VhostUser

/// One network interface for QEMU: our `NetDevice` over a tap, served over vhost-user on
/// `socketPath`; QEMU's `virtio-net-device` (its own config space and control queue) hands the
/// RX/TX queue pair to it.
final class VhostUserNet: Sendable {
    let interface: NetworkInterface
    let socketPath: String
    let server: VhostUserServer

    init(_ interface: NetworkInterface, socketPath: String, logger: Logger) throws(HypervisorError) {
        let tap: TapBackend
        do {
            tap = try TapBackend(name: interface.tapName, netnsPath: interface.netnsPath)
        } catch {
            throw .system(operation: "opening tap \(interface.tapName)", error)
        }
        let device = NetDevice(mac: interface.mac, mtu: interface.mtu, backend: tap, logger: logger)
        do {
            server = try VhostUserServer(
                path: socketPath, device: device, queueCount: NetDevice.QueueIndex.allCases.count,
                backendWork: { device.processBackend() }, backendDescriptor: tap.readinessDescriptor, logger: logger)
        } catch {
            throw .vhostUser("\(error)")
        }
        self.interface = interface
        self.socketPath = socketPath
    }

    func stop() { server.stop() }

    /// The MAC as QEMU's `mac=` property spells it.
    var macText: String { interface.mac.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":") }
}
