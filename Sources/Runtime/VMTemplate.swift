// VM templates (Kata's `[factory] enable_template`; docs/snapshots.md, "Templates"): where our
// VMM runs, a VM booted to agent ready is saved once per configuration, and later sandboxes
// restore it instead of booting a kernel. The clones' guest RAM is the template file mapped
// private: the pages the template touched are shared by every clone until one writes them.

import AgentAPI
import Hypervisor
import Logging
import Shim
import SystemSupport
import TTRPC
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// One template: `<directory>/<key>.vm`, where the key names everything that shapes the saved
/// VM. A configuration that changes anything of it (kernel, image, memory, vCPUs, kernel
/// parameters, devices, the shim itself) gets a template of its own.
struct VMTemplate: Sendable {
    let directory: String
    let key: String
    var path: String { "\(directory)/\(key).vm" }
    var lockPath: String { "\(directory)/\(key).lock" }
    var workDirectory: String { "\(directory)/\(key).d" }

    /// The template a VM configured as `vmConfig` starts from, or nil when it cannot have one:
    /// virtio-net is not saved yet, so a VM with network interfaces boots.
    init?(for vmConfig: HypervisorConfig, directory: String) {
        guard vmConfig.networkInterfaces.isEmpty else { return nil }
        self.directory = directory
        key = Self.key(vmConfig)
    }

    var exists: Bool { access(path, R_OK) == 0 }

    /// The first 16 hex digits of a SHA-256 over every input of the saved VM. Files are named by
    /// their identity (device, inode, size, modification time), so a rebuilt kernel, image or
    /// shim makes a new template rather than restoring a guest over blocks it did not read.
    static func key(_ c: HypervisorConfig) -> String {
        let lines = [
            "format 1",
            "shim \(identity("/proc/self/exe"))",
            "kernel \(c.kernelPath) \(identity(c.kernelPath))",
            "initrd \(c.initrdPath ?? "-") \(c.initrdPath.map(identity) ?? "-")",
            "image \(c.imagePath ?? "-") \(c.imagePath.map(identity) ?? "-")",
            "memory \(c.memoryMiB) vcpus \(c.vcpus) reclaim \(c.reclaimFreedMemory) debug \(c.debug)",
            "cmdline \(c.cmdlineExtras.joined(separator: " "))",
            "shares \(c.sharedDirectories.map { "\($0.tag):\($0.readOnly)" }.joined(separator: ","))",
        ]
        return String(SHA256.hexDigest(lines.joined(separator: "\n")).prefix(16))
    }

    static func identity(_ path: String) -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { return "missing" }
        return "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    /// A restored guest starts with the template's kernel RNG state and its clock at the
    /// moment of the save: the host's entropy goes in and the RNG reseeds, then the clock is
    /// set. Kata's factory does the same when it hands out a templated VM.
    static func refresh(_ agent: Kata_Agent_V1_AgentServiceClient) async throws {
        var generator = SystemRandomNumberGenerator()
        let seed = (0..<64).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        _ = try await agent.reseedRandomDev(.with { $0.data = Data(seed) }, options: TTRPCCallOptions(timeout: .seconds(5)))
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        _ = try await agent.setGuestDateTime(.with {
            $0.sec = Int64(now.tv_sec)
            $0.usec = Int64(now.tv_nsec / 1000)
        }, options: TTRPCCallOptions(timeout: .seconds(5)))
    }

    /// A template that failed to restore goes; the next sandbox makes a new one.
    func discard() { unlink(path) }

    /// Boots a VM configured like `vmConfig` to agent ready and saves it as this template:
    /// health-checked, its connection closed (a save carries none; `saveTemplate` waits for it
    /// to end), written to a temporary file
    /// and renamed. One maker per key at a time (a lock file); a template already there, or a
    /// maker already at work, makes this return at once. Failures are logged; the sandbox that
    /// asked runs on either way.
    func make(from vmConfig: HypervisorConfig, agentTimeoutSeconds: Double, logger: Logger) async {
        let started = ContinuousClock.now
        mkdir(directory, 0o700)
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else {
            logger.warning("template \(key): cannot open \(lockPath): errno \(errno)")
            return
        }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0, !exists else { return }
        let temporary = path + ".tmp"
        unlink(temporary)
        var config = vmConfig
        config.runtimeDirectory = workDirectory + "/vm"
        config.hybridVsockPath = nil
        config.consoleOutput = nil
        config.restoreFrom = nil
        config.traffic = HypervisorTraffic()
        config.sharedDirectories = config.sharedDirectories.map {
            SharedDirectory(tag: $0.tag, hostPath: workDirectory + "/" + $0.tag, readOnly: $0.readOnly)
        }
        mkdir(workDirectory, 0o700)
        for share in config.sharedDirectories { mkdir(share.hostPath, 0o700) }
        defer {
            // Empty by then: the shares were never mounted, and the VM empties its directory on stop.
            for share in config.sharedDirectories { rmdir(share.hostPath) }
            rmdir(config.runtimeDirectory)
            rmdir(workDirectory)
        }
        let vm = KVMHypervisor(config: config, logger: logger)
        do {
            try await vm.start()
            let client = try await PodVM.connectAgent(vm, timeoutSeconds: agentTimeoutSeconds, logger: logger)
            await client.close()
            try await vm.saveTemplate(to: temporary)
            await vm.stop(graceSeconds: 0)
            guard rename(temporary, path) == 0 else { throw RuntimeError.system(operation: "rename \(temporary)", errno: errno) }
            var st = stat()
            _ = stat(path, &st)
            logger.info("template \(key): saved at agent ready in \((ContinuousClock.now - started).milliseconds) ms, \(st.st_blocks * 512 >> 20) MiB on disk (\(path))")
        } catch {
            await vm.stop(graceSeconds: 0)
            unlink(temporary)
            logger.warning("template \(key): not saved: \(error)")
        }
    }
}
