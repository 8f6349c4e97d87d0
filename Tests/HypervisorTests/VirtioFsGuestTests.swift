import SystemSupport
import Testing

@testable import Hypervisor

#if canImport(Glibc)
import Glibc
#endif

/// virtio-fs end to end: our kernel under QEMU/TCG mounts a host directory served by our FUSE
/// server + virtio-fs device model over our vhost-user server (guest-image/init/virtiofs-check.c
/// is /init and prints one "vfs:" line per check, then reboots).
@Suite(.serialized) struct VirtioFsGuestTests {
    /// A share laid out as the checks expect: host.txt, dir/{a,b,c}, rootfs/etc/marker and the
    /// absolute symlink rootfs/abs -> /etc.
    static func makeShare(_ name: String) throws -> String {
        let base = "/tmp/ks-vfs-\(name)-\(getpid())"
        let script = """
            set -e
            rm -rf \(base); mkdir -p \(base)/share/dir \(base)/share/rootfs/etc
            printf 'hello from the host\\n' > \(base)/share/host.txt
            touch \(base)/share/dir/a \(base)/share/dir/b; mkdir \(base)/share/dir/c
            printf 'share-etc\\n' > \(base)/share/rootfs/etc/marker
            ln -s /etc \(base)/share/rootfs/abs
            """
        guard GuestFixture.shell(script) != nil else { throw GuestFixture.FixtureError(description: "share setup failed") }
        return base + "/share"
    }

    static func config(_ name: String, share: String, readOnly: Bool = false, extras: [String] = [], memoryMiB: Int = 256)
        throws -> HypervisorConfig
    {
        let paths = try VirtioFsFixture.paths.get()
        var config = HypervisorConfig(
            kernelPath: paths.kernel, initrdPath: paths.initrd, cmdlineExtras: extras, memoryMiB: memoryMiB,
            backend: .qemu, runtimeDirectory: "/tmp/ks-hv-vfs-\(name)-\(getpid())",
            sharedDirectories: [SharedDirectory(tag: "kataShared", hostPath: share, readOnly: readOnly)])
        config.cmdlineExtras.append("KS_TAG=kataShared")
        return config
    }

    /// Boots, waits for the guest to reboot (end of its checks), returns its "vfs:" lines.
    static func run(_ vm: QEMUHypervisor, seconds: Int = 120, started: (QEMUHypervisor) -> Void = { _ in }) async throws
        -> [String]
    {
        try await vm.start()
        started(vm)
        let exited = Task { await vm.waitForExit() }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(seconds))
            await vm.stop(graceSeconds: 0)
        }
        let final = await exited.value
        watchdog.cancel()
        #expect(final == .stopped(exitCode: 0, requested: false), "console:\n\(vm.consoleTail)")
        return vm.consoleTail.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters() }.filter { $0.hasPrefix("vfs: ") }
    }

    @Test func guestMountsReadsWritesListsAndStaysInsideTheShare() async throws {
        raiseDescriptorLimit()
        let share = try Self.makeShare("rw")
        defer { removeShare(share) }
        _ = try VirtioFsFixture.paths.get()
        // The runtime makes a timerfd for the first sleep of each kind (as in `run`'s watchdog)
        // and keeps it: have them made before counting.
        try await Task.sleep(for: .milliseconds(1))
        try await Task { try await Task.sleep(for: .milliseconds(1)) }.value
        let fdsBefore = HostState.openFDCount()
        let listBefore = HostState.openFDs()
        var pid: Int32 = 0
        var sockets: [String] = []
        var config = try Self.config("rw", share: share)
        do {
            let vm = QEMUHypervisor(config: config)
            let lines = try await Self.run(vm) { vm in
                pid = vm.pid ?? 0
                sockets = vm.virtioFsSocketPaths
            }
            #expect(lines == [
                "vfs: mounted",
                "vfs: read hello from the host",
                "vfs: wrote guest.txt",
                "vfs: list a,b,c",
                "vfs: readlink /etc",
                "vfs: chroot-etc share-etc",
                "vfs: host-passwd ENOENT",
                "vfs: done",
            ], "console:\n\(vm.consoleTail)")
            await vm.stop()
            config = vm.config
        }
        let written = GuestFixture.shell("cat \(share)/guest.txt")
        #expect(written == "written by the guest")
        #expect(pid > 0 && !HostState.processExists(pid))
        #expect(!sockets.isEmpty && sockets.allSatisfy { !HostState.fileExists($0) })
        #expect(!HostState.fileExists(config.runtimeDirectory))
        #expect(HostState.openFDCount() == fdsBefore, "before: \(listBefore)\nafter: \(HostState.openFDs())")
    }

    @Test func readOnlyShareRefusesTheGuestsWrite() async throws {
        let share = try Self.makeShare("ro")
        defer { removeShare(share) }
        let vm = QEMUHypervisor(config: try Self.config("ro", share: share, readOnly: true))
        let lines = try await Self.run(vm)
        #expect(lines.prefix(3) == ["vfs: mounted", "vfs: read hello from the host", "vfs: FAIL write guest.txt: Read-only file system"],
                "console:\n\(vm.consoleTail)")
        #expect(!HostState.fileExists(share + "/guest.txt"))
        await vm.stop()
    }

    @Test func badSharesAreRefusedBeforeQEMUStarts() async throws {
        let fdsBefore = HostState.openFDCount()
        var config = try Self.config("bad", share: "/nonexistent/share")
        await #expect(throws: HypervisorError.self) { try await QEMUHypervisor(config: config).start() }
        config.sharedDirectories = [SharedDirectory(tag: String(repeating: "t", count: 37), hostPath: "/tmp")]
        await #expect(throws: HypervisorError.self) { try await QEMUHypervisor(config: config).start() }
        config.sharedDirectories = [SharedDirectory(tag: "x", hostPath: "/tmp"), SharedDirectory(tag: "x", hostPath: "/tmp")]
        await #expect(throws: HypervisorError.self) { try await QEMUHypervisor(config: config).start() }
        #expect(!HostState.fileExists(config.runtimeDirectory))
        #expect(HostState.openFDCount() == fdsBefore)
    }
}

/// Removes what `makeShare` made (the share's parent directory).
func removeShare(_ share: String) {
    guard share.hasSuffix("/share"), share.hasPrefix("/tmp/ks-vfs-") else { return }
    _ = GuestFixture.shell("rm -rf '\(share.dropLast(6))'")
}

/// Every inode the guest's dentry cache holds costs the FUSE server one host descriptor; the
/// server allows half the soft limit. Raise soft to hard, as a VMM's main should.
func raiseDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
}

/// Our kernel and an initramfs whose /init is guest-image/init/virtiofs-check.c, built once.
enum VirtioFsFixture {
    static let hostProgram = "/tmp/kata-swift-vfs-fixture-\(getpid())/virtiofs-check"

    static let paths: Result<GuestFixture.Paths, GuestFixture.FixtureError> = {
        let work = "/tmp/kata-swift-vfs-fixture-\(getpid())"
        let root = GuestFixture.repoRoot
        let script = """
            set -e
            mkdir -p \(work)
            kdir=$(\(root)/guest-image/build-kernel.sh 2>/dev/null | tail -1)
            gcc -static -O2 -o \(work)/virtiofs-check \(root)/guest-image/init/virtiofs-check.c
            \(root)/guest-image/build-initramfs.sh \(work)/vfs.cpio \(work)/virtiofs-check >/dev/null 2>&1
            echo "$kdir/vmlinux"
            """
        guard let output = GuestFixture.shell(script), let kernel = output.split(separator: "\n").last.map(String.init),
            access(kernel, R_OK) == 0
        else {
            return .failure(GuestFixture.FixtureError(description: "could not build the virtio-fs fixture (kernel or virtiofs-check)"))
        }
        return .success(GuestFixture.Paths(kernel: kernel, initrd: "\(work)/vfs.cpio"))
    }()
}

extension Substring {
    fileprivate func trimmingCharacters() -> String {
        var s = self
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        while let first = s.first, first.isWhitespace { s = s.dropFirst() }
        return String(s)
    }
}
