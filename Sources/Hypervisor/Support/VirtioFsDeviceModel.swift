import Devices
import FUSE
import Logging
import VirtIO

/// The virtio-fs device model for one `SharedDirectory`, the same for both backends: our FUSE
/// server confined to the host directory (read-only if asked) behind `VirtioFsDevice`. QEMU gets
/// it over vhost-user (`VirtioFsShare`), our VMM on a virtio-mmio slot (`KVMHypervisor`).
func makeVirtioFsDevice(_ share: SharedDirectory, traffic: DeviceTraffic, logger: Logger) throws(HypervisorError) -> VirtioFsDevice {
    try makeVirtioFsDeviceAndFileSystem(share, traffic: traffic, logger: logger).device
}

/// The device and the file system behind it (whose root the serving thread re-opens once it has
/// pivoted into the share).
func makeVirtioFsDeviceAndFileSystem(_ share: SharedDirectory, traffic: DeviceTraffic, logger: Logger) throws(HypervisorError)
    -> (device: VirtioFsDevice, fileSystem: PassthroughFileSystem)
{
    let fileSystem: PassthroughFileSystem
    do {
        fileSystem = try PassthroughFileSystem(PassthroughConfiguration(root: share.hostPath, readOnly: share.readOnly))
    } catch {
        throw .invalidConfig("shared directory \(share.hostPath) (tag \(share.tag)): \(error)")
    }
    do {
        return (try VirtioFsDevice(tag: share.tag, server: FUSEServer(fileSystem: fileSystem), traffic: traffic, logger: logger), fileSystem)
    } catch {
        throw .invalidConfig("\(error)")
    }
}
