import CSupport
@testable import Hypervisor
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Our guest kernel (from the build cache) and an initramfs whose /init is the vsock-echo test
/// program (guest-image/init/vsock-echo.c), built once per test process.
enum GuestFixture {
    struct Paths: Sendable {
        var kernel: String
        var initrd: String
    }

    static let repoRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/HypervisorTests/GuestFixture.swift
        return parts.joined(separator: "/")
    }()

    static let paths: Result<Paths, FixtureError> = build()

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
    }

    private static func build() -> Result<Paths, FixtureError> {
        // Writing to a connection the VM side closed must fail with EPIPE, not kill the runner
        // (the shim ignores SIGPIPE the same way).
        signal(SIGPIPE, SIG_IGN)
        let work = "/tmp/kata-swift-hv-fixture-\(getpid())"
        let script = """
            set -e
            mkdir -p \(work)
            kdir=$(\(repoRoot)/guest-image/build-kernel.sh 2>/dev/null | tail -1)
            gcc -static -O2 -o \(work)/vsock-echo \(repoRoot)/guest-image/init/vsock-echo.c
            \(repoRoot)/guest-image/build-initramfs.sh \(work)/echo.cpio \(work)/vsock-echo >/dev/null 2>&1
            echo "$kdir/vmlinux"
            """
        guard let output = shell(script), let kernel = output.split(separator: "\n").last.map(String.init),
            access(kernel, R_OK) == 0
        else {
            return .failure(FixtureError(description: "could not build the guest fixture (kernel or vsock-echo)"))
        }
        return .success(Paths(kernel: kernel, initrd: "\(work)/echo.cpio"))
    }

    /// Runs `script` with /bin/sh; its stdout, or nil when it fails.
    static func shell(_ script: String) -> String? {
        guard let pipe = popen(script, "r") else { return nil }
        var output = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, pipe)
            if n <= 0 { break }
            output += buffer[..<n]
        }
        guard pclose(pipe) == 0 else { return nil }
        return String(decoding: output, as: UTF8.self).trimmingCharacters()
    }

    static func config(name: String, extras: [String] = [], hybrid: Bool = false, forwarded: [UInt32] = [])
        throws -> HypervisorConfig
    {
        let paths = try paths.get()
        let dir = "/tmp/ks-hv-\(name)-\(getpid())"
        return HypervisorConfig(
            kernelPath: paths.kernel, initrdPath: paths.initrd, cmdlineExtras: extras, memoryMiB: 256, backend: .qemu,
            runtimeDirectory: dir, hybridVsockPath: hybrid ? dir + "/hybrid.sock" : nil, hybridForwardedPorts: forwarded)
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

/// Process-level facts the tests compare before and after.
enum HostState {
    /// Thread ids of this process whose name (comm) is `name`.
    static func threads(named name: String) -> [Int32] {
        guard let dir = opendir("/proc/self/task") else { return [] }
        defer { closedir(dir) }
        var found: [Int32] = []
        while let entry = readdir(dir) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let n = Int32(tid) else { continue }
            let comm = QEMUHypervisor.readProcFile("/proc/self/task/\(tid)/comm", limit: 64)
            if comm.split(separator: "\n").first.map(String.init) == name { found.append(n) }
        }
        return found
    }

    /// fd number → readlink of /proc/<pid>/fd/<n>.
    static func descriptorTargets(of pid: Int32) -> [Int32: String] {
        guard let dir = opendir("/proc/\(pid)/fd") else { return [:] }
        defer { closedir(dir) }
        var targets: [Int32: String] = [:]
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let n = Int32(name) else { continue }
            var buffer = [CChar](repeating: 0, count: 4096)
            let count = readlink("/proc/\(pid)/fd/\(name)", &buffer, buffer.count - 1)
            if count >= 0 { targets[n] = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        }
        return targets
    }

    static func openFDCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while readdir(dir) != nil { count += 1 }
        return count - 3  // ".", ".." and the directory's own fd
    }

    /// Where each open fd points, for a readable failure message.
    static func openFDs() -> [String] {
        guard let dir = opendir("/proc/self/fd") else { return [] }
        defer { closedir(dir) }
        var out: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            var buffer = [CChar](repeating: 0, count: 256)
            let n = readlink("/proc/self/fd/\(name)", &buffer, 255)
            out.append("\(name) -> \(n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?")")
        }
        return out.sorted()
    }

    static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno != ESRCH
    }

    static func fileExists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }
}

/// Blocking socket I/O with deadlines, for the test's side of a connection.
enum TestIO {
    struct Timeout: Error {}

    /// Reads exactly `count` bytes, or throws after `seconds`; returns fewer at end of stream.
    static func read(_ fd: FileDescriptor, count: Int, seconds: Double = 10) throws -> [UInt8] {
        var out: [UInt8] = []
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while out.count < count {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw Timeout() }
            var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
            let ms = Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            let r = poll(&p, 1, max(ms, 1))
            if r == 0 { continue }
            let bytes = try fd.read(upTo: count - out.count)
            if bytes.isEmpty { break }
            out += bytes
        }
        return out
    }

    /// Reads up to and including the first newline.
    static func readLine(_ fd: FileDescriptor, seconds: Double = 10) throws -> String {
        var line: [UInt8] = []
        while line.last != UInt8(ascii: "\n") {
            let byte = try read(fd, count: 1, seconds: seconds)
            if byte.isEmpty { break }
            line += byte
        }
        return String(decoding: line, as: UTF8.self)
    }

    static func connectUnix(_ path: String) throws -> FileDescriptor {
        FileDescriptor(owning: try shimResult(ks_unix_connect(path)))
    }
}
