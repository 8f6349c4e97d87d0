// VM templates (Kata's `[factory] enable_template`; docs/snapshots.md, "Templates"): where our
// VMM runs, a VM booted to agent ready is saved once per configuration, and later sandboxes
// restore it instead of booting a kernel. The clones' guest RAM is the template file mapped
// private: the pages the template touched are shared by every clone until one writes them.

import AgentAPI
import Hypervisor
import Logging
import Netlink
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
/// parameters, devices, the shim itself) gets a template of its own. Beside it, `<key>.inputs`
/// lists what the key was made of, so a template whose files have changed since can be found
/// and removed (`sweep`).
struct VMTemplate: Sendable {
    let directory: String
    /// What the key is made of, one per line (`inputs(_:)`).
    let inputs: [String]
    let key: String
    var path: String { "\(directory)/\(key).vm" }
    var lockPath: String { "\(directory)/\(key).lock" }
    var inputsPath: String { "\(directory)/\(key).inputs" }
    var workDirectory: String { "\(directory)/\(key).d" }

    /// The template a VM configured as `vmConfig` starts from.
    init(for vmConfig: HypervisorConfig, directory: String) {
        self.directory = directory
        inputs = Self.inputs(vmConfig)
        key = Self.key(inputs)
    }

    var exists: Bool { access(path, R_OK) == 0 }

    /// Every input of the saved VM. Files are named by their identity (device, inode, size,
    /// modification time), so a rebuilt kernel, image or shim makes a new template rather than
    /// restoring a guest over blocks it did not read. NICs count by number and MTU only: a
    /// clone's taps and MACs are its own (the agent gives the guest NIC the pod's MAC, as for a
    /// warm sandbox).
    static func inputs(_ c: HypervisorConfig) -> [String] {
        let shim = currentExecutablePath()
        return [
            "format 1",
            "shim \(shim) \(identity(shim))",
            "kernel \(c.kernelPath) \(identity(c.kernelPath))",
            "initrd \(c.initrdPath ?? "-") \(c.initrdPath.map(identity) ?? "-")",
            "image \(c.imagePath ?? "-") \(c.imagePath.map(identity) ?? "-")",
            "memory \(c.memoryMiB) vcpus \(c.vcpus) reclaim \(c.reclaimFreedMemory) debug \(c.debug)",
            "cmdline \(c.cmdlineExtras.joined(separator: " "))",
            "shares \(c.sharedDirectories.map { "\($0.tag):\($0.readOnly)" }.joined(separator: ","))",
            "nics \(c.networkInterfaces.map { "mtu \($0.mtu)" }.joined(separator: ","))",
        ]
    }

    /// The first 16 hex digits of a SHA-256 over the inputs.
    static func key(_ inputs: [String]) -> String {
        String(SHA256.hexDigest(inputs.joined(separator: "\n")).prefix(16))
    }

    /// Whether a template's inputs (`<key>.inputs`) name a file whose identity changed since:
    /// a rebuilt kernel or image, a replaced shim. Nothing could restore that template again.
    static func isStale(inputs text: String) -> String? {
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard ["shim", "kernel", "initrd", "image"].contains(words[0]), words.count >= 3 else { continue }
            let path = words[1..<(words.count - 1)].joined(separator: " ")
            guard path != "-" else { continue }
            let recorded = words[words.count - 1]
            if identity(path) != recorded { return "\(words[0]) \(path) changed" }
        }
        return nil
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
    func discard() {
        unlink(path)
        unlink(inputsPath)
    }

    /// Boots a VM configured like `vmConfig` to agent ready and saves it as this template:
    /// health-checked, warmed up by a throwaway container (GuestWarmUp), its connection closed
    /// (a save carries none; `saveTemplate` waits for it to end), written to a temporary file and
    /// renamed. One maker per key at a time (a lock file); a template already there, or a maker
    /// already at work, makes this return at once. Failures are logged; the sandbox that asked
    /// runs on either way.
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
        // A maker killed mid-way (SIGTERM ends the shim without waiting) left its work behind:
        // its NICs' namespace pinned, its directories. Ours now, under the lock.
        let holding = workDirectory + "/netns"
        NetworkNamespace.remove(at: holding)
        _ = try? FileManager.default.removeItem(atPath: workDirectory)
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
        // The maker's NICs are taps in a namespace of its own: nothing reaches them, and the
        // guest's NICs stay down until a clone's agent is told the pod's network.
        if !config.networkInterfaces.isEmpty {
            do {
                try NetworkNamespace.create(at: holding)
            } catch {
                logger.warning("template \(key): not saved: the maker's network namespace: \(error)")
                rmdir(workDirectory)
                return
            }
            config.networkInterfaces = config.networkInterfaces.enumerated().map { index, interface in
                WarmNetwork.interface(holdingNamespace: holding, tapName: "tap\(index)_kata", mtu: interface.mtu)
            }
        }
        defer {
            // Empty by then: the shares were never mounted, and the VM empties its directory on stop.
            for share in config.sharedDirectories { rmdir(share.hostPath) }
            rmdir(config.runtimeDirectory)
            if !config.networkInterfaces.isEmpty { NetworkNamespace.remove(at: holding) }
            rmdir(workDirectory)
        }
        let vm = KVMHypervisor(config: config, logger: logger)
        do {
            try await vm.start()
            let client = try await PodVM.connectAgent(vm, timeoutSeconds: agentTimeoutSeconds, logger: logger)
            // Saved warmed up: every clone's first container finds the agent's container path
            // paged in and the Swift runtime's first-use costs paid (the agent image's own
            // busybox, never a pod's code).
            await GuestWarmUp.run(Kata_Agent_V1_AgentServiceClient(client), for: "template \(key)", logger: logger)
            await client.close()
            try await vm.saveTemplate(to: temporary)
            await vm.stop(graceSeconds: 0)
            try writeInputs()
            guard rename(temporary, path) == 0 else { throw RuntimeError.system(operation: "rename \(temporary)", errno: errno) }
            var st = stat()
            _ = stat(path, &st)
            logger.info("template \(key): saved, warmed up, in \(Int((ContinuousClock.now - started).milliseconds)) ms, \(st.st_blocks * 512 >> 20) MiB on disk (\(path))")
            sweep(logger: logger)
        } catch {
            await vm.stop(graceSeconds: 0)
            unlink(temporary)
            unlink(inputsPath)
            logger.warning("template \(key): not saved: \(error)")
        }
    }

    /// `<key>.inputs`, written before the template itself appears.
    private func writeInputs() throws(RuntimeError) {
        let fd = open(inputsPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system(operation: "create \(inputsPath)", errno: errno) }
        defer { close(fd) }
        do {
            try writeAll(fd, Array((inputs.joined(separator: "\n") + "\n").utf8))
        } catch {
            throw .system(operation: "write \(inputsPath)", errno: error.rawValue)
        }
    }

    /// Removes the other templates in the directory that nothing can restore any more: their
    /// kernel, image or shim changed (an upgrade, a rebuild), or they have no inputs (an older
    /// format). On the default tmpfs each is host memory. A template whose maker is at work (its
    /// lock held) is left alone; a pod restoring one as it goes keeps its mapping.
    func sweep(logger: Logger) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let keys = Set(names.compactMap { name -> String? in
            for suffix in [".vm", ".inputs"] where name.hasSuffix(suffix) { return String(name.dropLast(suffix.count)) }
            return nil
        }).subtracting([key])
        for other in keys.sorted() {
            let base = "\(directory)/\(other)"
            let why: String
            if let text = try? readWholeTextFile(base + ".inputs", limit: 64 << 10) {
                guard let stale = Self.isStale(inputs: text) else { continue }
                why = stale
            } else {
                why = "no inputs recorded"
            }
            let lock = open(base + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard lock >= 0 else { continue }
            defer { close(lock) }
            guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { continue }
            unlink(base + ".vm")
            unlink(base + ".inputs")
            unlink(base + ".lock")
            logger.info("template \(other): removed, \(why)")
        }
    }
}
