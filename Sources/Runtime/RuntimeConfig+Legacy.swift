// kata-swift's own keys from before the Kata schema ([hypervisor] backend, vcpus, memory_mib, ...):
// a file that uses them still loads, each old key with a deprecation warning naming its Kata
// replacement (the table in docs/configuration.md). New keys in the same file win.

import Hypervisor

extension RuntimeConfig {
    /// Old key → the key that replaces it.
    static let legacyKeys: [(table: String, key: String, replacement: String)] = [
        ("hypervisor", "backend", "a [hypervisor.qemu] or [hypervisor.kvm] table, or runtime.hypervisor_name"),
        ("hypervisor", "kernel", "hypervisor.<qemu|kvm>.kernel"),
        ("hypervisor", "initrd", "hypervisor.<qemu|kvm>.initrd"),
        ("hypervisor", "vcpus", "hypervisor.<qemu|kvm>.default_vcpus"),
        ("hypervisor", "memory_mib", "hypervisor.<qemu|kvm>.default_memory"),
        ("hypervisor", "kernel_params", "hypervisor.<qemu|kvm>.kernel_params"),
        ("hypervisor", "debug_console", "agent.kata.debug_console_enabled"),
        ("hypervisor", "qemu_path", "hypervisor.qemu.path"),
        ("hypervisor", "qemu_sandbox", "hypervisor.qemu.seccompsandbox"),
        ("hypervisor", "qemu_user", "hypervisor.qemu.user"),
        ("agent", "dial_timeout_s", "agent.kata.dial_timeout"),
        ("agent", "log_level", "agent.kata.enable_debug"),
        ("runtime", "log_level", "runtime.enable_debug"),
    ]

    mutating func applyLegacy(_ reader: ConfigReader) throws(ConfigError) {
        for (table, key, replacement) in Self.legacyKeys {
            guard let entry = reader.document.tables[table]?[key] else { continue }
            reader.warn(table, key, line: entry.line, "deprecated, still read; use \(replacement)")
        }
        let h = "hypervisor"
        if let name = try reader.oneOf(h, "backend", HypervisorBackendKind.allCases.map(\.rawValue)) {
            backend = HypervisorBackendKind(rawValue: name) ?? .auto
        }
        if let path = try reader.path(h, "kernel") { kernel = path }
        if let path = try reader.path(h, "initrd") { initrd = path }
        if let n = try reader.integer(h, "vcpus", in: 1...64) { vcpus = n }
        if let n = try reader.integer(h, "memory_mib", in: 64...65536) { memoryMiB = n }
        if let params = try reader.string(h, "kernel_params") { kernelParams = params.split(separator: " ").map(String.init) }
        if let flag = try reader.boolean(h, "debug_console") { debugConsole = flag }
        if let path = try reader.path(h, "qemu_path") { qemuPath = path }
        if let flag = try reader.boolean(h, "qemu_sandbox") { qemuSandbox = flag }
        if let user = try reader.string(h, "qemu_user") { try setQEMUUser(user, reader, h, "qemu_user") }
        if let n = try reader.integer("agent", "dial_timeout_s", in: 1...3600) { agentDialTimeoutSeconds = n }
        if let level = try reader.oneOf("agent", "log_level", RuntimeConfig.agentLogLevels) { agentLogLevel = level }
        if let level = try reader.oneOf("runtime", "log_level", RuntimeConfig.logLevels) { logLevel = level }
    }
}
