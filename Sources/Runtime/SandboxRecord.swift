// `<sandbox_dir>/<sandbox-id>/sandbox.info`: what a running sandbox is, for operators
// (`kata-ctl list`). Written by the shim once the VM runs; goes with the directory. Lines of
// `key=value`, like os-release: pid (the shim's), backend, vcpus, memory_mib, kernel, started (Unix
// seconds), and monitor (the shim's metrics socket; absent in records of older shims).

#if canImport(Glibc)
import Glibc
#endif

public struct SandboxRecord: Equatable, Sendable {
    public static let fileName = "sandbox.info"

    public var shimPID: Int32
    public var backend: String
    public var vcpus: Int
    public var memoryMiB: Int
    public var kernel: String
    public var started: Int
    /// The shim's metrics endpoint (kata-ctl monitor scrapes it).
    public var monitorSocket: String?

    public init(
        shimPID: Int32, backend: String, vcpus: Int, memoryMiB: Int, kernel: String, started: Int, monitorSocket: String? = nil
    ) {
        self.shimPID = shimPID
        self.backend = backend
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.kernel = kernel
        self.started = started
        self.monitorSocket = monitorSocket
    }

    var text: String {
        "pid=\(shimPID)\nbackend=\(backend)\nvcpus=\(vcpus)\nmemory_mib=\(memoryMiB)\nkernel=\(kernel)\nstarted=\(started)\n"
            + (monitorSocket.map { "monitor=\($0)\n" } ?? "")
    }

    /// Parses the file's text; nil if a field is missing.
    public init?(parsing text: String) {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let pid = fields["pid"].flatMap({ Int32($0) }), let backend = fields["backend"],
              let vcpus = fields["vcpus"].flatMap({ Int($0) }), let memory = fields["memory_mib"].flatMap({ Int($0) }),
              let kernel = fields["kernel"], let started = fields["started"].flatMap({ Int($0) })
        else { return nil }
        self.init(
            shimPID: pid, backend: backend, vcpus: vcpus, memoryMiB: memory, kernel: kernel, started: started,
            monitorSocket: fields["monitor"])
    }

    /// Writes the record into the sandbox directory (atomically: a reader sees all or nothing).
    func write(to paths: SandboxPaths) throws(RuntimeError) {
        let path = paths.root + "/" + Self.fileName
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system(operation: "create \(temporary)", errno: errno) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            throw .system(operation: "write \(path)", errno: errno)
        }
    }

    /// The record of the sandbox directory `root`, if it has one.
    public static func read(sandboxRoot root: String) -> SandboxRecord? {
        guard let text = try? readTextFile(root + "/" + fileName) else { return nil }
        return SandboxRecord(parsing: text)
    }

    /// The sandboxes under `sandboxDirectory`, sorted by id: each directory with its record, or nil
    /// while it has none (booting, or left by a shim that died). QEMU's socket directories
    /// (`vm-<pid>`) are not sandboxes.
    public static func list(sandboxDirectory: String) -> [(id: String, record: SandboxRecord?)] {
        guard let directory = opendir(sandboxDirectory) else { return [] }
        defer { closedir(directory) }
        var ids: [String] = []
        while let entry = readdir(directory) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard !name.hasPrefix("."), !name.hasPrefix("vm-") else { continue }  // ., .., .warm (the warm pools)
            ids.append(name)
        }
        return ids.sorted().map { ($0, read(sandboxRoot: sandboxDirectory + "/" + $0)) }
    }
}
