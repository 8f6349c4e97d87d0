// The runtime's configuration (docs/configuration.md): a TOML file like Kata's configuration.toml,
// found through containerd's runtime options (ConfigPath), else $KATA_CONF_FILE, else
// /etc/kata-swift/configuration.toml, else built-in defaults. Unknown keys and wrong types are
// errors naming the file, the key and the line.

import Hypervisor
#if canImport(Glibc)
import Glibc
#endif

/// Everything the VM sandbox reads from the configuration.
public struct RuntimeConfig: Equatable, Sendable {
    public static let defaultPath = "/etc/kata-swift/configuration.toml"
    public static let environmentVariable = "KATA_CONF_FILE"
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// The levels the guest agent understands (`agent.log=` on the kernel command line).
    public static let agentLogLevels = ["trace", "debug", "info", "warning", "error"]

    // [hypervisor]
    public var backend: HypervisorBackendKind = .auto
    public var kernel = "/usr/share/kata-swift/vmlinux"
    public var initrd = "/usr/share/kata-swift/initramfs-agent.cpio"
    public var vcpus = 1
    public var memoryMiB = 256
    /// Extra kernel command-line words, appended to the backend's own.
    public var kernelParams: [String] = []
    public var debugConsole = false
    public var qemuPath = "/usr/bin/qemu-system-x86_64"
    /// QEMU's seccomp filter (-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny).
    public var qemuSandbox = true
    /// The unprivileged user QEMU switches to once its devices are set up (-runas): a user name or
    /// "uid:gid"; nil (`qemu_user = ""`) keeps QEMU root.
    public var qemuUser: String? = RuntimeConfig.defaultQEMUUser
    /// The dedicated user scripts/install-deps.sh creates for QEMU.
    public static let defaultQEMUUser = "kata-swift-qemu"
    /// A uid (and gid) of its own for each sandbox's QEMU, from `qemuUIDBase ..< qemuUIDBase +
    /// qemuUIDCount` (`qemu_uid_base`, `qemu_uid_count`), instead of the shared `qemuUser`; 0
    /// uids: the shared user. The default range is one no account or user namespace mapping uses
    /// on our hosts (docs/security.md 8.2).
    public var qemuUIDBase = 2_000_000_000
    public var qemuUIDCount = 1000
    /// Where the uids are claimed: one for every shim on the host, whatever its sandbox_dir.
    public static let qemuUIDLockDirectory = "/run/kata-swift/qemu-uids"
    // [agent]
    /// How long the shim waits for the agent's first answer after the VM starts.
    public var agentDialTimeoutSeconds = 60
    public var agentLogLevel = "info"
    // [runtime]
    public var logLevel = "info"
    /// Parent of the per-sandbox directories (`<sandbox_dir>/<sandbox-id>/`).
    public var sandboxDirectory = "/run/kata-swift"

    public init() {}

    /// Where the configuration came from, for logs and errors.
    public enum Source: Equatable, Sendable, CustomStringConvertible {
        case runtimeOptions(String)
        case environment(String)
        case defaultPath(String)
        case builtIn

        public var description: String {
            switch self {
            case .runtimeOptions(let path): "\(path) (containerd runtime options ConfigPath)"
            case .environment(let path): "\(path) (\(RuntimeConfig.environmentVariable))"
            case .defaultPath(let path): path
            case .builtIn: "built-in defaults"
            }
        }
    }

    /// Finds and reads the configuration. `configPath` is containerd's ConfigPath option.
    public static func load(configPath: String?, environment: [String: String]) throws(ConfigError) -> (RuntimeConfig, Source) {
        if let path = configPath, !path.isEmpty {
            return (try read(path: path), .runtimeOptions(path))
        }
        if let path = environment[environmentVariable], !path.isEmpty {
            return (try read(path: path), .environment(path))
        }
        if access(defaultPath, F_OK) == 0 {
            return (try read(path: defaultPath), .defaultPath(defaultPath))
        }
        return (RuntimeConfig(), .builtIn)
    }

    /// Reads and validates the file at `path`.
    public static func read(path: String) throws(ConfigError) -> RuntimeConfig {
        let text: String
        do {
            text = try readTextFile(path)
        } catch {
            throw .unreadable(file: path, reason: error.description)
        }
        return try parse(text, file: path)
    }

    /// Parses and validates `text` (the contents of `file`).
    public static func parse(_ text: String, file: String) throws(ConfigError) -> RuntimeConfig {
        let document: TOMLDocument
        do {
            document = try TOMLSubset.parse(text)
        } catch {
            throw .syntax(file: file, line: error.line, reason: error.reason)
        }
        var config = RuntimeConfig()
        let reader = ConfigReader(document: document, file: file)
        try reader.checkTables(known: ["hypervisor", "agent", "runtime"])

        try reader.table("hypervisor", keys: [
            "backend", "kernel", "initrd", "vcpus", "memory_mib", "kernel_params", "debug_console", "qemu_path",
            "qemu_sandbox", "qemu_user", "qemu_uid_base", "qemu_uid_count",
        ])
        if let name = try reader.string("hypervisor", "backend") {
            guard let kind = HypervisorBackendKind(rawValue: name) else {
                throw reader.invalid("hypervisor", "backend", "\"\(name)\" is not one of \"auto\", \"kvm\", \"qemu\"")
            }
            config.backend = kind
        }
        if let path = try reader.path("hypervisor", "kernel") { config.kernel = path }
        if let path = try reader.path("hypervisor", "initrd") { config.initrd = path }
        if let n = try reader.integer("hypervisor", "vcpus", in: 1...64) { config.vcpus = n }
        if let n = try reader.integer("hypervisor", "memory_mib", in: 64...65536) { config.memoryMiB = n }
        if let params = try reader.string("hypervisor", "kernel_params") {
            config.kernelParams = params.split(separator: " ").map(String.init)
        }
        if let flag = try reader.boolean("hypervisor", "debug_console") { config.debugConsole = flag }
        if let path = try reader.path("hypervisor", "qemu_path") { config.qemuPath = path }
        if let flag = try reader.boolean("hypervisor", "qemu_sandbox") { config.qemuSandbox = flag }
        if let user = try reader.string("hypervisor", "qemu_user") {
            guard user.isEmpty || user.allSatisfy({ $0.isLetter || $0.isNumber || "_-.:".contains($0) }), user.count <= 64 else {
                throw reader.invalid("hypervisor", "qemu_user", "\"\(user)\" is neither a user name nor \"uid:gid\"")
            }
            config.qemuUser = user.isEmpty ? nil : user
        }
        if let base = try reader.integer("hypervisor", "qemu_uid_base", in: 1...4_000_000_000) { config.qemuUIDBase = base }
        if let count = try reader.integer("hypervisor", "qemu_uid_count", in: 0...65536) { config.qemuUIDCount = count }

        try reader.table("agent", keys: ["dial_timeout_s", "log_level"])
        if let n = try reader.integer("agent", "dial_timeout_s", in: 1...3600) { config.agentDialTimeoutSeconds = n }
        if let level = try reader.logLevel("agent", "log_level", allowed: RuntimeConfig.agentLogLevels) { config.agentLogLevel = level }

        try reader.table("runtime", keys: ["log_level", "sandbox_dir"])
        if let level = try reader.logLevel("runtime", "log_level", allowed: RuntimeConfig.logLevels) { config.logLevel = level }
        if let path = try reader.path("runtime", "sandbox_dir") { config.sandboxDirectory = path }
        return config
    }
}

/// Typed access to the document, with errors that name file, key and line.
private struct ConfigReader {
    let document: TOMLDocument
    let file: String

    func checkTables(known: Set<String>) throws(ConfigError) {
        if let (key, entry) = document.tables[""]?.min(by: { $0.value.line < $1.value.line }) {
            throw .unknownKey(file: file, key: key, line: entry.line)
        }
        for (name, line) in document.tableLines.sorted(by: { $0.value < $1.value }) where !known.contains(name) {
            throw .unknownKey(file: file, key: "[\(name)]", line: line)
        }
    }

    func table(_ name: String, keys: Set<String>) throws(ConfigError) {
        for (key, entry) in (document.tables[name] ?? [:]).sorted(by: { $0.value.line < $1.value.line })
        where !keys.contains(key) {
            throw .unknownKey(file: file, key: "\(name).\(key)", line: entry.line)
        }
    }

    func entry(_ table: String, _ key: String) -> TOMLDocument.Entry? { document.tables[table]?[key] }

    func wrongType(_ table: String, _ key: String, expected: String, _ entry: TOMLDocument.Entry) -> ConfigError {
        .wrongType(file: file, key: "\(table).\(key)", line: entry.line, expected: expected, found: entry.value.typeName)
    }

    func invalid(_ table: String, _ key: String, _ reason: String) -> ConfigError {
        .invalidValue(file: file, key: "\(table).\(key)", line: entry(table, key)?.line ?? 0, reason: reason)
    }

    func string(_ table: String, _ key: String) throws(ConfigError) -> String? {
        guard let entry = entry(table, key) else { return nil }
        guard case .string(let value) = entry.value else { throw wrongType(table, key, expected: "string", entry) }
        return value
    }

    func path(_ table: String, _ key: String) throws(ConfigError) -> String? {
        guard let value = try string(table, key) else { return nil }
        guard value.hasPrefix("/") else { throw invalid(table, key, "\"\(value)\" is not an absolute path") }
        return value
    }

    func integer(_ table: String, _ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let entry = entry(table, key) else { return nil }
        guard case .integer(let value) = entry.value else { throw wrongType(table, key, expected: "integer", entry) }
        guard value >= range.lowerBound, value <= range.upperBound else {
            throw invalid(table, key, "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(value)
    }

    func boolean(_ table: String, _ key: String) throws(ConfigError) -> Bool? {
        guard let entry = entry(table, key) else { return nil }
        guard case .boolean(let value) = entry.value else { throw wrongType(table, key, expected: "boolean", entry) }
        return value
    }

    func logLevel(_ table: String, _ key: String, allowed: [String]) throws(ConfigError) -> String? {
        guard let level = try string(table, key) else { return nil }
        guard allowed.contains(level) else {
            throw invalid(table, key, "\"\(level)\" is not one of \(allowed.joined(separator: ", "))")
        }
        return level
    }
}

/// A configuration that cannot be used.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case syntax(file: String, line: Int, reason: String)
    case unknownKey(file: String, key: String, line: Int)
    case wrongType(file: String, key: String, line: Int, expected: String, found: String)
    case invalidValue(file: String, key: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): "configuration \(file): cannot read: \(reason)"
        case .syntax(let file, let line, let reason): "configuration \(file):\(line): \(reason)"
        case .unknownKey(let file, let key, let line): "configuration \(file):\(line): unknown key \(key)"
        case .wrongType(let file, let key, let line, let expected, let found):
            "configuration \(file):\(line): \(key) must be of type \(expected), not \(found)"
        case .invalidValue(let file, let key, let line, let reason): "configuration \(file):\(line): \(key): \(reason)"
        }
    }
}

/// Reads a whole (small) text file.
func readTextFile(_ path: String) throws(RuntimeError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .system(operation: "open \(path)", errno: errno) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw .system(operation: "read \(path)", errno: errno) }
        if n == 0 { break }
        bytes += buffer[0..<n]
        guard bytes.count <= 1 << 20 else { throw .system(operation: "read \(path): larger than 1 MiB", errno: EFBIG) }
    }
    return String(decoding: bytes, as: UTF8.self)
}
