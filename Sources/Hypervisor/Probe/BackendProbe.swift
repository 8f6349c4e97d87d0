import SystemSupport
import HostProbes
import KVM
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Decides `auto`: which backend runs a guest userspace on this host, probed once and cached.
///
/// The cache key is the host kernel release, the KVM API version and a hash of the CPUID KVM
/// supports, so a kernel or CPU change probes again. The cache is a small text file under
/// /var/cache/kata-swift (or /run/kata-swift when /var/cache is not writable).
public struct BackendVerdict: Sendable, Equatable {
    /// Our in-process KVM VMM can run a guest userspace here.
    public var kvmUserspace: Bool
    /// Why (or why not): the probe's finding.
    public var kvmReason: String
    /// QEMU is installed and can run the guest (TCG always; KVM only if kvmUserspace).
    public var qemuAvailable: Bool
    public var qemuReason: String
    /// The key the verdict was cached under.
    public var key: String
    /// Whether this verdict came from the cache.
    public var cached: Bool

    /// The backend `auto` resolves to; nil when neither can run.
    public var autoChoice: HypervisorBackendKind? {
        if kvmUserspace { return .kvm }
        if qemuAvailable { return .qemu }
        return nil
    }
}

public enum BackendProbe {
    public static let cacheDirectories = ["/var/cache/kata-swift", "/run/kata-swift"]

    /// The verdict for this host: from the cache when the key matches, else probed (and cached).
    public static func verdict(qemuBinary: String = "/usr/bin/qemu-system-x86_64", refresh: Bool = false) -> BackendVerdict {
        let key = hostKey()
        if !refresh, let cached = readCache(key: key) { return cached }
        let kvm = probeKVM()
        let qemu = probeQEMU(qemuBinary)
        var verdict = BackendVerdict(
            kvmUserspace: kvm.works, kvmReason: kvm.reason, qemuAvailable: qemu.works, qemuReason: qemu.reason, key: key,
            cached: false)
        writeCache(verdict)
        verdict.cached = false
        return verdict
    }

    /// The backend to use for `requested`; throws when it cannot run here.
    public static func resolve(_ requested: HypervisorBackendKind, qemuBinary: String) throws(HypervisorError) -> HypervisorBackendKind {
        let v = verdict(qemuBinary: qemuBinary)
        switch requested {
        case .auto:
            guard let choice = v.autoChoice else {
                throw .backendUnavailable("no backend can run a guest userspace: kvm: \(v.kvmReason); qemu: \(v.qemuReason)")
            }
            return choice
        case .kvm:
            guard v.kvmUserspace else { throw .backendUnavailable("kvm: \(v.kvmReason)") }
            return .kvm
        case .qemu:
            guard v.qemuAvailable else { throw .backendUnavailable("qemu: \(v.qemuReason)") }
            return .qemu
        }
    }

    // MARK: probes

    static func probeKVM() -> (works: Bool, reason: String) {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else { return (false, "/dev/kvm is not accessible") }
        // The probe runs on its own thread: a broken KVM may never return from KVM_RUN.
        let result = Mutex<KVMUserspaceProbe.Outcome?>(nil)
        let done = Atomic<Bool>(false)
        guard let thread = try? WorkerThread(name: "kvm-probe", {
            let outcome = KVMUserspaceProbe.run()
            result.withLock { $0 = outcome }
            done.store(true, ordering: .releasing)
        }) else { return (false, "could not start the probe thread") }
        for _ in 0..<500 where !done.load(ordering: .acquiring) { usleep(10_000) }
        guard done.load(ordering: .acquiring) else {
            return (false, "a ring-3 SYSCALL probe guest did not finish within 5 s")
        }
        thread.join()
        switch result.withLock({ $0 }) {
        case .works: return (true, "a ring-3 SYSCALL probe guest reached ring 0 and returned with SYSRET")
        case .fails(let why): return (false, "ring-3 SYSCALL probe: \(why)")
        case nil: return (false, "the probe produced no result")
        }
    }

    static func probeQEMU(_ binary: String) -> (works: Bool, reason: String) {
        guard access(binary, X_OK) == 0 else { return (false, "\(binary) is not installed (Debian package qemu-system-x86)") }
        return (true, "\(binary) present: runs the guest with TCG (software), vsock over our vhost-user backend")
    }

    // MARK: cache

    static func hostKey() -> String {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        var api = "none"
        var cpuidHash: UInt64 = 0xcbf2_9ce4_8422_2325
        if let kvm = try? Kvm() {
            // Kvm() accepts only API version 12; the vCPU limit tells hosts apart as well.
            api = "12-vcpus\(kvm.recommendedVcpus)"
            // Feature leaves only (1, 7.0, 0x80000001): other leaves carry values that vary.
            let features = ((try? kvm.supportedCPUID()) ?? []).filter {
                ($0.function == 1 || ($0.function == 7 && $0.index == 0) || $0.function == 0x8000_0001)
            }
            for entry in features {
                for word in [entry.function, entry.index, entry.ebx, entry.ecx, entry.edx] {
                    cpuidHash = (cpuidHash ^ UInt64(word)) &* 0x100_0000_01b3
                }
            }
        }
        return "\(release)-kvmapi\(api)-cpuid\(String(cpuidHash, radix: 16))".filter { $0.isLetter || $0.isNumber || "._-".contains($0) }
    }

    static func cachePath(directory: String, key: String) -> String { "\(directory)/backend-\(key)" }

    static func readCache(key: String) -> BackendVerdict? {
        for dir in cacheDirectories {
            guard let text = try? readWholeTextFile(cachePath(directory: dir, key: key), limit: 1 << 16) else { continue }
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") {
                guard let eq = line.firstIndex(of: "=") else { continue }
                fields[String(line[..<eq])] = String(line[line.index(after: eq)...]).trimmingNewline()
            }
            guard let kvm = fields["kvm_userspace"], let qemu = fields["qemu"] else { continue }
            return BackendVerdict(
                kvmUserspace: kvm == "yes", kvmReason: fields["kvm_reason"] ?? "", qemuAvailable: qemu == "yes",
                qemuReason: fields["qemu_reason"] ?? "", key: key, cached: true)
        }
        return nil
    }

    static func writeCache(_ v: BackendVerdict) {
        let text = """
            kvm_userspace=\(v.kvmUserspace ? "yes" : "no")
            kvm_reason=\(v.kvmReason)
            qemu=\(v.qemuAvailable ? "yes" : "no")
            qemu_reason=\(v.qemuReason)

            """
        for dir in cacheDirectories {
            mkdir(dir, 0o755)
            let path = cachePath(directory: dir, key: v.key)
            let tmp = path + ".tmp\(getpid())"
            guard let file = fopen(tmp, "w") else { continue }
            fputs(text, file)
            fclose(file)
            if rename(tmp, path) == 0 { return }
            unlink(tmp)
        }
    }
}

extension String {
    fileprivate func trimmingNewline() -> String {
        var s = Substring(self)
        while s.last == "\n" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
