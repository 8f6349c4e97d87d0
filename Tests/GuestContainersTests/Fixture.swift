// Test fixture: a busybox rootfs built from the host's /bin/busybox (busybox-static), specs like
// the ones containerd writes, and a runner that captures stdout/stderr through pipes.
import Glibc
import GuestContainers
import OCI
import Synchronization

enum Fixture {
    static let applets = [
        "sh", "echo", "cat", "id", "hostname", "mkdir", "chown", "sleep", "ls", "touch", "true", "head",
        "ps", "wc", "rm", "tail", "dd", "tr",
    ]
    private static let built = Mutex<String?>(nil)
    nonisolated(unsafe) private static var builtPath: UnsafeMutablePointer<CChar>?

    /// The shared rootfs (built once per test run).
    static func rootfs() throws -> String {
        try built.withLock { path in
            if let path { return path }
            var template = Array("/tmp/ks-ctr-rootfs-XXXXXX".utf8CString)
            guard let p = mkdtemp(&template) else { throw TestError("mkdtemp failed") }
            let root = String(cString: p)
            chmod(root, 0o755)  // mkdtemp makes it 0700; a real rootfs lets everyone traverse "/"
            for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "home/user", "root"] {
                try mkdirs(root + "/" + d)
            }
            try copyFile("/bin/busybox", root + "/bin/busybox", mode: 0o755)
            for a in applets { _ = symlink("busybox", root + "/bin/" + a) }
            try writeText(root + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n")
            try writeText(root + "/etc/group", "root:x:0:\nuser:x:1000:\n")
            path = root
            builtPath = strdup(root)
            atexit {  // the rootfs holds only plain files and directories (mounts live in the children)
                if let p = Fixture.builtPath {
                    removeTree(String(cString: p))
                }
            }
            return root
        }
    }

    static let defaultCaps = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]

    /// What containerd's default spec looks like, with a read-only root and a tmpfs /tmp.
    static func spec(_ args: [String], hostname: String? = nil, user: OCIUser = OCIUser()) -> OCISpec {
        let mounts = [
            OCIMount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            OCIMount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            OCIMount(
                destination: "/dev/pts", type: "devpts", source: "devpts",
                options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            OCIMount(destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            OCIMount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
            OCIMount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
            OCIMount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"]),
            OCIMount(destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"]),
            OCIMount(destination: "/etc/hostname-bound", type: "bind", source: "/etc/hostname", options: ["rbind", "ro"]),
        ]
        let linux = OCILinux(
            namespaces: ["pid", "ipc", "uts", "mount", "network"].map { OCINamespace(type: $0) },
            maskedPaths: ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/scsi"],
            readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"])
        let process = OCIProcess(
            user: user, args: args, env: ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root"], cwd: "/",
            capabilities: OCICapabilities(all: defaultCaps), noNewPrivileges: true)
        return OCISpec(process: process, root: OCIRoot(path: "rootfs", readonly: true), hostname: hostname, mounts: mounts, linux: linux)
    }

    static let cgroupRoot = "/sys/fs/cgroup/unified"

    /// cgroup v1 roots below this test process's own cgroups (so tests stay inside the limits
    /// they run under), or nil when a controller is not mounted at /sys/fs/cgroup/<name>.
    static func v1Roots() -> [String: String]? {
        guard let text = try? String(contentsOfFileAt: "/proc/self/cgroup") else { return nil }
        var roots: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            for c in f[1].split(separator: ",") where CgroupV1.controllers.contains(String(c)) {
                let dir = "/sys/fs/cgroup/\(c)" + (f[2] == "/" ? "" : String(f[2]))
                if access(dir + "/cgroup.procs", W_OK) == 0 { roots[String(c)] = dir }
            }
        }
        return roots.count == CgroupV1.controllers.count ? roots : nil
    }

    static var hasV2Memory: Bool {
        ((try? String(contentsOfFileAt: cgroupRoot + "/cgroup.controllers")) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
            .contains("memory")
    }

    static func options() -> ContainerOptions {
        ContainerOptions(cgroupRoot: access(cgroupRoot + "/cgroup.procs", W_OK) == 0 ? cgroupRoot : nil)
    }

    static func uniqueID(_ name: String) -> String {
        "\(name)-\(getpid())-\(counter.add(1, ordering: .relaxed).newValue)"
    }
    private static let counter = Atomic<Int>(0)

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var stdoutCount: Int
    }

    /// Creates, starts and waits for a container; stdin gets `input` (then EOF).
    static func run(_ spec: OCISpec, name: String, input: String = "", keepStdout: Bool = true) throws -> Result {
        let inPipe = try Pipe(), outPipe = try Pipe(), errPipe = try Pipe()
        let c = try Container.create(
            id: uniqueID(name), spec: spec, rootfs: try rootfs(),
            stdio: .fds(stdin: inPipe.read, stdout: outPipe.write, stderr: errPipe.write), options: options())
        defer { try? c.delete(force: true) }
        inPipe.closeRead()
        outPipe.closeWrite()
        errPipe.closeWrite()
        try c.start()
        writeAll(inPipe.write, Array(input.utf8))
        inPipe.closeWrite()
        let errBox = Mutex<[UInt8]>([])
        let errFD = errPipe.read
        let t = Thread { errBox.withLock { $0 = readAll(errFD, keep: true).bytes } }
        let out = readAll(outPipe.read, keep: keepStdout)
        t.join()
        let status = c.wait()
        return Result(
            status: status, stdout: String(decoding: out.bytes, as: UTF8.self),
            stderr: String(decoding: errBox.withLock { $0 }, as: UTF8.self), stdoutCount: out.count)
    }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A pipe whose ends close on deinit.
final class Pipe {
    private(set) var read: Int32
    private(set) var write: Int32
    init() throws {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw TestError("pipe: \(errno)") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        read = fds[0]
        write = fds[1]
    }
    func closeRead() { if read >= 0 { close(read); read = -1 } }
    func closeWrite() { if write >= 0 { close(write); write = -1 } }
    deinit {
        closeRead()
        closeWrite()
    }
}

/// A plain joinable thread (tests only).
final class Thread: @unchecked Sendable {
    private var tid = pthread_t()
    private let body: () -> Void
    init(_ body: @escaping () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&tid, nil, { arg in
            let t = Unmanaged<Thread>.fromOpaque(arg!).takeRetainedValue()
            t.body()
            return nil
        }, box)
    }
    func join() { pthread_join(tid, nil) }
}

func readAll(_ fd: Int32, keep: Bool) -> (bytes: [UInt8], count: Int) {
    var out: [UInt8] = []
    var count = 0
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        count += n
        if keep { out += buf[0..<n] }
    }
    return (out, count)
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        off += n
    }
}

func mkdirs(_ path: String) throws {
    var cur = ""
    for part in path.split(separator: "/") {
        cur += "/" + part
        if mkdir(cur, 0o755) != 0 && errno != EEXIST { throw TestError("mkdir \(cur): \(errno)") }
    }
}

func writeText(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw TestError("open \(path): \(errno)") }
    writeAll(fd, Array(text.utf8))
    close(fd)
}

func copyFile(_ from: String, _ to: String, mode: mode_t) throws {
    let src = open(from, O_RDONLY | O_CLOEXEC)
    guard src >= 0 else { throw TestError("open \(from): \(errno)") }
    defer { close(src) }
    let dst = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard dst >= 0 else { throw TestError("open \(to): \(errno)") }
    defer { close(dst) }
    writeAll(dst, readAll(src, keep: true).bytes)
}

/// Mount count of this process and the pids of its children: must not grow across a failure.
func leakSnapshot() -> (mounts: Int, children: [String]) {
    let mounts = (try? String(contentsOfFileAt: "/proc/self/mountinfo"))?.split(separator: "\n").count ?? -1
    var kids: [String] = []
    if let dir = opendir("/proc/self/task") {
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name.first?.isNumber == true,
                let c = try? String(contentsOfFileAt: "/proc/self/task/\(name)/children")
            {
                kids += c.split(separator: " ").map(String.init)
            }
        }
        closedir(dir)
    }
    return (mounts, kids.sorted())
}

extension String {
    init(contentsOfFileAt path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TestError("open \(path): \(errno)") }
        defer { close(fd) }
        self = String(decoding: readAll(fd, keep: true).bytes, as: UTF8.self)
    }
}

/// rm -rf without following symlinks (test cleanup).
func removeTree(_ path: String) {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    if (st.st_mode & S_IFMT) == S_IFDIR, let dir = opendir(path) {
        var names: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for n in names { removeTree(path + "/" + n) }
        rmdir(path)
    } else {
        unlink(path)
    }
}
