import CSupport
import Glibc
import Synchronization
import SystemSupport
import Testing
@testable import VMM

/// The seccomp allowlists of our VMM's threads (ks_thread_filter.c, docs/security.md): each
/// forbidden call is made in a forked child that loaded the policy, so a kill ends only it.
@Suite struct ThreadConfinementTests {
    // x86_64 system call numbers (Swift does not import glibc's SYS_ macros).
    static let SYS_write = 1, SYS_ioctl = 16, SYS_socket = 41, SYS_connect = 42, SYS_clone = 56, SYS_execve = 59
    static let SYS_kill = 62, SYS_getcwd = 79, SYS_ptrace = 101, SYS_setuid = 105, SYS_setresuid = 117
    static let SYS_mount = 165, SYS_init_module = 175, SYS_gettid = 186, SYS_openat = 257, SYS_unshare = 272
    static let SYS_setns = 308, SYS_bpf = 321
    static let TUNSETOFFLOAD = 0x4004_54D0  // _IOW('T', 208, unsigned int)

    enum Outcome: Equatable {
        case allowed, refused, otherError, killedBySIGSYS, other(Int32)
    }

    static func probe(_ confinement: ThreadConfinement, _ nr: Int, _ a0: Int = 0, _ a1: Int = 0, _ a2: Int = 0) -> Outcome {
        let status = ks_thread_filter_probe(confinement.kind, nr, a0, a1, a2)
        if status >= 0, status & 0x7f == SIGSYS { return .killedBySIGSYS }
        if status >= 0, status & 0x7f == 0 {
            switch (status >> 8) & 0xff {
            case 0: return .allowed
            case 101: return .refused
            case 102: return .otherError
            default: break
            }
        }
        return .other(status)
    }

    @Test func vcpuThreadsMayRunKVMButNeverOpenExecOrConnect() {
        // Any KVM ioctl passes the filter (EBADF here: the fd is not KVM's).
        #expect(Self.probe(.vcpu, Self.SYS_ioctl, -1, 0xAE80) == .otherError)
        // Other ioctls (TIOCGWINSZ) and calls outside the list fail with EPERM.
        #expect(Self.probe(.vcpu, Self.SYS_ioctl, 0, 0x5413) == .refused)
        #expect(Self.probe(.vcpu, Self.SYS_getcwd) == .refused)
        #expect(Self.probe(.vcpu, Self.SYS_kill, 1, 0) == .refused)
        // What an attacker on a vCPU thread wants kills the process.
        for nr in [Self.SYS_openat, Self.SYS_socket, Self.SYS_connect, Self.SYS_execve, Self.SYS_clone, Self.SYS_ptrace, Self.SYS_mount, Self.SYS_setuid, Self.SYS_unshare] {
            #expect(Self.probe(.vcpu, nr, -100, 0) == .killedBySIGSYS, "syscall \(nr)")
        }
        // What the vCPU loop needs passes; also TUNSETOFFLOAD (EBADF here), which virtio-net
        // issues on the vCPU thread that takes the driver's DRIVER_OK write.
        #expect(Self.probe(.vcpu, Self.SYS_gettid) == .allowed)
        #expect(Self.probe(.vcpu, Self.SYS_ioctl, -1, Self.TUNSETOFFLOAD) == .otherError)
        #expect(Self.probe(.vcpu, Self.SYS_write, -1) == .otherError)  // EBADF, not EPERM
    }

    @Test func theDeviceThreadMayServeFilesAndUnixSocketsButNeverExecOrMount() {
        #expect(Self.probe(.device, Self.SYS_openat, Int(AT_FDCWD), 0) == .otherError)  // EFAULT: a NULL path, but allowed
        #expect(Self.probe(.device, Self.SYS_socket, Int(AF_UNIX), Int(SOCK_STREAM.rawValue)) == .allowed)
        #expect(Self.probe(.device, Self.SYS_socket, Int(AF_INET), Int(SOCK_STREAM.rawValue)) == .refused)
        #expect(Self.probe(.device, Self.SYS_ioctl, 0, 0x5413) == .refused)
        for nr in [Self.SYS_execve, Self.SYS_clone, Self.SYS_ptrace, Self.SYS_mount, Self.SYS_setns, Self.SYS_setresuid, Self.SYS_bpf, Self.SYS_init_module] {
            #expect(Self.probe(.device, nr, 0, 0) == .killedBySIGSYS, "syscall \(nr)")
        }
    }

    @Test func theFilterIsPerThreadAndRefusalsAreErrnos() throws {
        let result = Mutex<(cwd: Int32, errno: Int32)?>(nil)
        let proceed = Atomic<Bool>(false)
        let thread = VMMThread()
        try thread.start(name: "vcpu-test", confinement: .vcpu) {
            var buffer = [CChar](repeating: 0, count: 256)
            let cwd = getcwd(&buffer, buffer.count) == nil ? Int32(-1) : 0
            let error = errno
            result.withLock { $0 = (cwd, error) }
            while !proceed.load(ordering: .acquiring) { usleep(1000) }
        }
        var seen: (cwd: Int32, errno: Int32)?
        while seen == nil {
            usleep(1000)
            seen = result.withLock { $0 }
        }
        let tid = try #require(Self.threads().first { $0.name == "vcpu-test" }).tid
        let status = Self.status(of: tid)
        proceed.store(true, ordering: .releasing)
        thread.join()
        #expect(seen?.cwd == -1 && seen?.errno == EPERM)
        #expect(status["Seccomp"] == "2" && status["NoNewPrivs"] == "1", "\(status)")
        // This thread, and the process, stay unfiltered.
        let mine = Self.read("/proc/thread-self/status")
        #expect(mine.contains("Seccomp:\t0"))
        var buffer = [CChar](repeating: 0, count: 256)
        #expect(getcwd(&buffer, buffer.count) != nil)
    }

    enum LoopToken: UInt64 { case kick = 1 }

    /// A loop is built (epoll_create1, eventfd2) before its thread loads the filter; registering,
    /// waiting and stopping are allowed under the strictest policy (vCPU).
    @Test func anEventManagerBuiltBeforeTheFilterRunsUnderIt() throws {
        let manager = try EventManager<LoopToken>()
        let kick = try EventFD()
        let handled = Atomic<Int>(0)
        let thread = VMMThread()
        try thread.start(name: "loop-test", confinement: .vcpu) {
            do {
                try manager.add(kick.fd, token: .kick)
                try manager.run { _, _ in
                    _ = try? kick.consume()
                    handled.add(1, ordering: .releasing)
                }
            } catch {
                handled.store(-1, ordering: .releasing)
            }
        }
        // The thread registers the kick itself: signal until it has handled one.
        for _ in 0..<500 where handled.load(ordering: .acquiring) == 0 {
            try kick.signal()
            usleep(2000)
        }
        manager.stop()
        thread.join()
        #expect(handled.load(ordering: .acquiring) >= 1)
    }

    @Test func aRunningVMsVcpuAndDeviceThreadsAreFiltered() throws {
        let vm = try VirtualMachine(config: VMConfig(
            memorySize: 1 << 20, payload: .realMode(code: [0xeb, 0xfe], address: 0x1000),  // jmp $
            virtioDevices: [.rng()]))
        try vm.start()
        defer {
            vm.stop()
            _ = vm.wait()
        }
        let threads = Self.threads()
        let vcpu = try #require(threads.first { $0.name == "vcpu0" })
        let device = try #require(threads.first { $0.name == "virtio-devices" })
        #expect(Self.status(of: vcpu.tid)["Seccomp"] == "2")
        #expect(Self.status(of: device.tid)["Seccomp"] == "2")
        #expect(Self.status(of: vcpu.tid)["NoNewPrivs"] == "1")
    }

    static func threads() -> [(tid: Int32, name: String)] {
        guard let dir = opendir("/proc/self/task") else { return [] }
        defer { closedir(dir) }
        var found: [(Int32, String)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let tid = Int32(name) else { continue }
            found.append((tid, read("/proc/self/task/\(tid)/comm").split(separator: "\n").first.map(String.init) ?? ""))
        }
        return found
    }

    static func status(of tid: Int32) -> [String: String] {
        Dictionary(read("/proc/self/task/\(tid)/status").split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            return (String(parts[0]), String(parts[1].drop(while: { $0 == "\t" || $0 == " " })))
        }, uniquingKeysWith: { a, _ in a })
    }

    static func read(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
