// Kata's per-pod annotations (docs/configuration.md, "Annotations"): io.katacontainers.config.
// hypervisor.*, .agent.* and .runtime.* on the pod's sandbox container (CRI passes the pod's
// annotations there, `ctr run --annotation` sets them directly). A hypervisor annotation is
// honoured only when its name (the part after the prefix) matches one of the configuration's
// enable_annotations regular expressions, as in Kata (a match anywhere in the name, like Go's
// regexp.MatchString); one that does not is an error naming it.

#if canImport(Glibc)
import Glibc
#endif

public enum KataAnnotations {
    public static let hypervisorPrefix = "io.katacontainers.config.hypervisor."
    public static let agentPrefix = "io.katacontainers.config.agent."
    public static let runtimePrefix = "io.katacontainers.config.runtime."

    /// `config` with the pod's annotations applied; `warnings` gets the ones that change nothing.
    public static func apply(_ annotations: [String: String], to config: RuntimeConfig, warnings: inout [String])
        throws(ConfigError) -> RuntimeConfig
    {
        var config = config
        for (name, value) in annotations.sorted(by: { $0.key < $1.key }) {
            if name.hasPrefix(hypervisorPrefix) {
                try applyHypervisor(String(name.dropFirst(hypervisorPrefix.count)), value, full: name, &config, &warnings)
            } else if name.hasPrefix(agentPrefix) {
                try applyAgent(String(name.dropFirst(agentPrefix.count)), value, full: name, &config, &warnings)
            } else if name.hasPrefix(runtimePrefix) {
                try applyRuntime(String(name.dropFirst(runtimePrefix.count)), value, full: name, &config, &warnings)
            }
        }
        return config
    }

    /// Kata's rule (Go's regexp.MatchString): some pattern of enable_annotations matches
    /// somewhere in the name; `^...$` in a pattern makes it match the whole name only.
    static func allowed(_ name: String, by patterns: [String]) -> Bool {
        patterns.contains { pattern in
            guard let regex = try? Regex(pattern) else { return false }
            return (try? regex.firstMatch(in: name)) != nil
        }
    }

    private static func applyHypervisor(
        _ name: String, _ value: String, full: String, _ config: inout RuntimeConfig, _ warnings: inout [String]
    ) throws(ConfigError) {
        guard allowed(name, by: config.enableAnnotations) else {
            let patterns = config.enableAnnotations.map { "\"\($0)\"" }.joined(separator: ", ")
            throw .annotation(
                name: full,
                reason: "not enabled by the configuration (enable_annotations = [\(patterns)]); add \"\(name)\" to enable_annotations of its [hypervisor.*] table to allow it")
        }
        switch name {
        case "default_vcpus":
            let n = try integer(full, value, in: 1...1024)
            config.vcpus = RuntimeConfig.kataVcpus(n)
        case "default_memory":
            config.memoryMiB = try integer(full, value, in: 64...65536)
        case "kernel_params":
            config.kernelParams += value.split(separator: " ").map(String.init)
        case "enable_debug":
            config.hypervisorDebug = try boolean(full, value)
        case "path":
            guard value.hasPrefix("/"), config.validHypervisorPaths.contains(where: { fnmatch($0, value, 0) == 0 }) else {
                let patterns = config.validHypervisorPaths.map { "\"\($0)\"" }.joined(separator: ", ")
                throw .annotation(name: full, reason: "\"\(value)\" does not match valid_hypervisor_paths = [\(patterns)]")
            }
            config.qemuPath = value
        default:
            warnings.append("annotation \(full): not implemented by kata-swift; ignored")
        }
    }

    private static func applyAgent(
        _ name: String, _ value: String, full: String, _ config: inout RuntimeConfig, _ warnings: inout [String]
    ) throws(ConfigError) {
        switch name {
        case "enable_debug":
            config.agentLogLevel = try boolean(full, value) ? "debug" : "info"
        case "dial_timeout":
            config.agentDialTimeoutSeconds = try integer(full, value, in: 1...3600)
        default:
            warnings.append("annotation \(full): not implemented by kata-swift; ignored")
        }
    }

    private static func applyRuntime(
        _ name: String, _ value: String, full: String, _ config: inout RuntimeConfig, _ warnings: inout [String]
    ) throws(ConfigError) {
        switch name {
        case "internetworking_model":
            guard value == "tcfilter" else {
                throw .annotation(name: full, reason: "\"\(value)\": kata-swift joins the pod network with tc filters only (\"tcfilter\")")
            }
        case "enable_debug":
            if try boolean(full, value) { config.logLevel = "debug" }
        case "sandbox_cgroup_only", "disable_guest_seccomp", "disable_new_netns":
            if try boolean(full, value) { warnings.append("annotation \(full): not implemented by kata-swift; ignored") }
        default:
            warnings.append("annotation \(full): not implemented by kata-swift; ignored")
        }
    }

    static func integer(_ name: String, _ value: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let n = Int(value.trimmingSpaces) else { throw .annotation(name: name, reason: "\"\(value)\" is not an integer") }
        guard range.contains(n) else { throw .annotation(name: name, reason: "\(n) is outside \(range.lowerBound)...\(range.upperBound)") }
        return n
    }

    /// Go's strconv.ParseBool, which Kata uses.
    static func boolean(_ name: String, _ value: String) throws(ConfigError) -> Bool {
        switch value.trimmingSpaces {
        case "1", "t", "T", "true", "TRUE", "True": return true
        case "0", "f", "F", "false", "FALSE", "False": return false
        default: throw .annotation(name: name, reason: "\"\(value)\" is not a boolean")
        }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
