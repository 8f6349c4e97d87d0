import Devices
#if canImport(Glibc)
import Glibc
#endif

extension HypervisorConfig {
    /// The checks every backend makes before it starts anything: the images are readable, the
    /// sizes and the guest CID are sane, each network interface has a MAC and an MTU a guest can
    /// use, and each shared directory is a directory with a virtio-fs tag of its own.
    /// `HypervisorLifecycle.start` runs them; a backend adds its own (`validateBackend`).
    func validate() throws(HypervisorError) {
        guard access(kernelPath, R_OK) == 0 else { throw .invalidConfig("kernel \(kernelPath) is not readable") }
        if let initrdPath, access(initrdPath, R_OK) != 0 {
            throw .invalidConfig("initrd \(initrdPath) is not readable")
        }
        if let imagePath, access(imagePath, R_OK) != 0 {
            throw .invalidConfig("image \(imagePath) is not readable")
        }
        guard (1...64).contains(vcpus) else { throw .invalidConfig("vcpus \(vcpus) not in 1...64") }
        guard (32...65536).contains(memoryMiB) else { throw .invalidConfig("memory \(memoryMiB) MiB not in 32...65536") }
        guard guestCID >= 3 else { throw .invalidConfig("guest CID \(guestCID) must be 3 or more") }
        for interface in networkInterfaces {
            guard interface.mac.count == 6 else {
                throw .invalidConfig("network interface \(interface.tapName): a MAC address has 6 bytes")
            }
            // The spec's floor for VIRTIO_NET_F_MTU (the IPv4 minimum).
            guard interface.mtu >= 68 else {
                throw .invalidConfig("network interface \(interface.tapName): MTU \(interface.mtu) below 68")
            }
        }
        try validateSharedDirectories()
    }

    /// Each tag 1...36 bytes without NUL (what fits the virtio-fs config space) and unique (the
    /// guest mounts by tag); each host path an existing directory.
    func validateSharedDirectories() throws(HypervisorError) {
        var tags: Set<String> = []
        for share in sharedDirectories {
            let bytes = share.tag.utf8.count
            guard (1...VirtioFsDevice.tagSize).contains(bytes), !share.tag.contains("\0"), tags.insert(share.tag).inserted else {
                throw .invalidConfig("virtio-fs tag \"\(share.tag)\" must be 1...\(VirtioFsDevice.tagSize) bytes and unique")
            }
            var st = stat()
            guard stat(share.hostPath, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                throw .invalidConfig("shared directory \(share.hostPath) (tag \(share.tag)) is not a directory")
            }
        }
    }
}
