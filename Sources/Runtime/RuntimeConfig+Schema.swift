// Kata's configuration schema (docs/configuration.md): one [hypervisor.<name>] table, where
// <name> is `qemu` or `kvm` (our in-process VMM; Kata's runtime-rs names its own in-process VMM's
// table [hypervisor.dragonball]), [agent.kata], [runtime] and [factory], with Kata's key names and
// units. Keys Kata defines that we do not implement are listed here and warned about when their
// value asks for something (ConfigReader.warnAboutUnreadKeys).

import Hypervisor
#if canImport(Glibc)
import Glibc
#endif

extension RuntimeConfig {
    /// The hypervisor tables we run, and the backend each one selects.
    static let hypervisorTables: [(table: String, kind: HypervisorBackendKind)] = [
        ("hypervisor.qemu", .qemu), ("hypervisor.kvm", .kvm),
    ]
    /// Kata's other VMMs: a file for one of them cannot be run as written.
    static let otherKataHypervisors: Set<String> = [
        "clh", "cloud-hypervisor", "firecracker", "dragonball", "stratovirt", "remote", "acrn",
    ]

    mutating func applyKataSchema(_ reader: ConfigReader) throws(ConfigError) {
        reader.unimplemented = Self.unimplementedKataKeys
        for (name, line) in reader.document.tableLines.sorted(by: { $0.value < $1.value }) where name.hasPrefix("hypervisor.") {
            let vmm = String(name.dropFirst("hypervisor.".count))
            if Self.otherKataHypervisors.contains(vmm) {
                throw .invalidValue(
                    file: reader.file, key: "[\(name)]", line: line,
                    reason: "kata-swift runs QEMU ([hypervisor.qemu]) or its own in-process KVM VMM ([hypervisor.kvm]), not \(vmm)")
            }
        }
        let present = Self.hypervisorTables.filter { reader.has(table: $0.table) }
        var chosen: (table: String, kind: HypervisorBackendKind)?
        switch try reader.oneOf("runtime", "hypervisor_name", HypervisorBackendKind.allCases.map(\.rawValue)) {
        case nil:
            guard present.count <= 1 else {
                throw .invalidValue(
                    file: reader.file, key: "[\(present[1].table)]", line: reader.document.tableLines[present[1].table] ?? 0,
                    reason: "the file has both [hypervisor.qemu] and [hypervisor.kvm]: set runtime.hypervisor_name to \"qemu\", \"kvm\" or \"auto\", or keep one table")
            }
            chosen = present.first
            backend = chosen?.kind ?? backend
        case let name?:
            let kind = HypervisorBackendKind(rawValue: name) ?? .auto
            backend = kind
            if kind == .auto {
                guard present.count <= 1 else {
                    throw reader.invalid("runtime", "hypervisor_name", "\"auto\" takes its settings from one [hypervisor.*] table, and this file has two")
                }
                chosen = present.first
            } else {
                chosen = present.first { $0.kind == kind }
            }
            for other in present where other.table != chosen?.table {
                reader.warn(other.table, "", line: reader.document.tableLines[other.table] ?? 0,
                            "ignored: runtime.hypervisor_name is \"\(name)\"")
                reader.silencedTables.insert(other.table)
            }
        }
        if let chosen { try applyHypervisor(reader, table: chosen.table, qemu: chosen.kind != .kvm) }
        try applyAgent(reader)
        try applyRuntime(reader)
        // [factory]: the VM cache is our warm pool; templates are saved VMs our VMM restores.
        if let n = try reader.integer("factory", "vm_cache_number", in: 0...64) { warmSandboxes = n }
        if let on = try reader.boolean("factory", "enable_template") { templates = on }
        if let path = try reader.path("factory", "template_path") { templatePath = path }
    }

    private mutating func applyHypervisor(_ reader: ConfigReader, table t: String, qemu: Bool) throws(ConfigError) {
        if let path = try reader.path(t, "kernel") { kernel = path }
        let initrdSet = try reader.string(t, "initrd").flatMap { $0.isEmpty ? nil : $0 }
        let imageSet = try reader.string(t, "image").flatMap { $0.isEmpty ? nil : $0 }
        if let path = initrdSet {
            guard path.hasPrefix("/") else { throw reader.invalid(t, "initrd", "\"\(path)\" is not an absolute path") }
            initrd = path
            image = nil
        }
        if let path = imageSet {
            // Kata's rule: the guest boots from one or the other.
            guard initrdSet == nil else {
                throw reader.invalid(t, "image", "set both image and initrd: the guest boots from one of them; remove one")
            }
            guard path.hasPrefix("/") else { throw reader.invalid(t, "image", "\"\(path)\" is not an absolute path") }
            image = path
        }
        if let flag = try reader.boolean(t, "reclaim_guest_freed_memory") { reclaimFreedMemory = flag }
        if let n = try reader.integer(t, "default_vcpus", in: -1024...1024) { vcpus = Self.kataVcpus(n) }
        if let n = try reader.integer(t, "default_memory", in: 0...65536) {
            // Kata: unspecified or 0 is the default.
            guard n == 0 || n >= 64 else { throw reader.invalid(t, "default_memory", "\(n) MiB is less than 64 MiB") }
            if n > 0 { memoryMiB = n }
        }
        if let n = try reader.integer(t, "default_maxvcpus", in: 0...1024), n != 0 {
            reader.warn(t, "default_maxvcpus", line: reader.entry(t, "default_maxvcpus")?.line ?? 0,
                        "kata-swift does not hot-plug vCPUs; the VM keeps default_vcpus")
        }
        if let params = try reader.string(t, "kernel_params") {
            kernelParams = params.split(separator: " ").map(String.init)
        }
        if let flag = try reader.boolean(t, "enable_debug") { hypervisorDebug = flag }
        if let patterns = try reader.strings(t, "enable_annotations") {
            for pattern in patterns where (try? Regex(pattern)) == nil {
                throw reader.invalid(t, "enable_annotations", "\"\(pattern)\" is not a regular expression")
            }
            enableAnnotations = patterns
        }
        if let fs = try reader.string(t, "shared_fs"), fs != "virtio-fs" {
            throw reader.invalid(t, "shared_fs", "\"\(fs)\": kata-swift shares files with the guest over virtio-fs only (shared_fs = \"virtio-fs\")")
        }
        guard qemu else { return }
        if let path = try reader.path(t, "path") { qemuPath = path }
        if let patterns = try reader.strings(t, "valid_hypervisor_paths") { validHypervisorPaths = patterns }
        if let machine = try reader.string(t, "machine_type"), !machine.isEmpty, machine != "microvm" {
            reader.warn(t, "machine_type", line: reader.entry(t, "machine_type")?.line ?? 0,
                        "kata-swift starts QEMU as -M microvm; \"\(machine)\" ignored")
        }
        if let options = try reader.string(t, "seccompsandbox") { qemuSandbox = !options.isEmpty }
        if let user = try reader.string(t, "user") { try setQEMUUser(user, reader, t, "user") }
        if let base = try reader.integer(t, "uid_base", in: 1...4_000_000_000) { qemuUIDBase = base }
        if let count = try reader.integer(t, "uid_count", in: 0...65536) { qemuUIDCount = count }
        if let source = try reader.string(t, "entropy_source") {
            guard source.isEmpty || source.hasPrefix("/") else {
                throw reader.invalid(t, "entropy_source", "\"\(source)\" is not an absolute path")
            }
            entropySource = source
        }
    }

    private mutating func applyAgent(_ reader: ConfigReader) throws(ConfigError) {
        let t = "agent.kata"
        if let flag = try reader.boolean(t, "debug_console_enabled") { debugConsole = flag }
        if let n = try reader.integer(t, "dial_timeout", in: 0...3600), n > 0 { agentDialTimeoutSeconds = n }
        if let flag = try reader.boolean(t, "enable_debug") { agentLogLevel = flag ? "debug" : "info" }
        if let modules = try reader.strings(t, "kernel_modules"), !modules.isEmpty {
            reader.warn(t, "kernel_modules", line: reader.entry(t, "kernel_modules")?.line ?? 0,
                        "kata-swift's guest loads no kernel modules (its kernel has what it needs built in); ignored")
        }
    }

    private mutating func applyRuntime(_ reader: ConfigReader) throws(ConfigError) {
        let t = "runtime"
        if let flag = try reader.boolean(t, "enable_debug"), flag { logLevel = "debug" }
        if let model = try reader.string(t, "internetworking_model"), model != "tcfilter" {
            throw reader.invalid(t, "internetworking_model", "\"\(model)\": kata-swift joins the pod network to the VM with tc filters only (\"tcfilter\")")
        }
        if let flag = try reader.boolean(t, "sandbox_cgroup_only"), flag {
            reader.warn(t, "sandbox_cgroup_only", line: reader.entry(t, "sandbox_cgroup_only")?.line ?? 0,
                        "not implemented by kata-swift (the VM's processes stay in the shim's cgroup); ignored")
        }
        if let flag = try reader.boolean(t, "static_sandbox_resource_mgmt"), !flag {
            reader.warn(t, "static_sandbox_resource_mgmt", line: reader.entry(t, "static_sandbox_resource_mgmt")?.line ?? 0,
                        "kata-swift always sizes the VM once, from default_vcpus, default_memory and the pod's annotations")
        }
        if let features = try reader.strings(t, "experimental"), !features.isEmpty {
            reader.warn(t, "experimental", line: reader.entry(t, "experimental")?.line ?? 0,
                        "kata-swift has no experimental features; \(features.joined(separator: ", ")) ignored")
        }
        if let path = try reader.path(t, "sandbox_dir") { sandboxDirectory = path }
    }

    mutating func setQEMUUser(_ user: String, _ reader: ConfigReader, _ table: String, _ key: String) throws(ConfigError) {
        guard user.isEmpty || user.allSatisfy({ $0.isLetter || $0.isNumber || "_-.:".contains($0) }), user.count <= 64 else {
            throw reader.invalid(table, key, "\"\(user)\" is neither a user name nor \"uid:gid\"")
        }
        qemuUser = user.isEmpty ? nil : user
    }

    /// Kata's default_vcpus rule: 0 is the default (1), negative means every host CPU, more than
    /// the host has is cut to what it has; never more than our VMs take (64).
    static func kataVcpus(_ n: Int) -> Int {
        let host = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let wanted = n == 0 ? 1 : n < 0 ? host : min(n, host)
        return min(wanted, 64)
    }

    /// Keys of Kata's configuration-qemu.toml (and runtime-rs's) that kata-swift reads but does
    /// not act on. Set to anything but false, 0, "" or [], each is warned about.
    static let unimplementedKataKeys: [String: Set<String>] = {
        let hypervisor: Set<String> = [
            "rootfs_type", "confidential_guest", "sev_snp_guest", "rootless", "firmware", "firmware_volume",
            "machine_accelerators", "cpu_features", "default_bridges", "memory_slots", "default_maxmemory", "memory_offset",
            "enable_virtio_mem", "disable_block_device_use", "virtio_fs_daemon", "valid_virtio_fs_daemon_paths",
            "virtio_fs_cache_size", "virtio_fs_queue_size", "virtio_fs_extra_args", "virtio_fs_cache",
            "virtio_fs_inode_file_handles", "block_device_driver", "block_device_aio", "block_device_cache_set",
            "block_device_cache_direct", "block_device_cache_noflush", "enable_iothreads", "enable_mem_prealloc",
            "enable_hugepages", "enable_vhost_user_store", "vhost_user_store_path",
            "enable_iommu", "enable_iommu_platform", "valid_vhost_user_store_paths", "vhost_user_reconnect_timeout_sec",
            "file_mem_backend", "valid_file_mem_backends", "pflashes", "extra_monitor_socket", "disable_nesting_checks",
            "msize_9p", "disable_image_nvdimm", "hot_plug_vfio", "cold_plug_vfio", "pcie_root_port", "disable_vhost_net",
"valid_entropy_sources", "guest_hook_path", "rx_rate_limiter_max_rate",
            "tx_rate_limiter_max_rate", "guest_memory_dump_path", "guest_memory_dump_paging", "enable_guest_swap",
            "use_legacy_serial", "disable_selinux", "disable_guest_selinux", "use_vsock", "hotplug_vfio_on_root_bus",
            "enable_swap", "valid_kernel_params", "enable_template",
        ]
        return [
            // Our VMM's rng reads the host's getrandom(); entropy_source is QEMU's.
            "hypervisor.qemu": hypervisor, "hypervisor.kvm": hypervisor.union(["entropy_source"]),
            "agent.kata": ["enable_tracing", "cdh_api_timeout", "container_pipe_size", "trace_mode", "trace_type"],
            "runtime": [
                "disable_guest_seccomp", "enable_vcpus_pinning", "guest_selinux_label", "enable_tracing", "jaeger_endpoint",
                "jaeger_user", "jaeger_password", "disable_new_netns", "sandbox_bind_mounts", "vfio_mode",
                "disable_guest_empty_dir", "enable_pprof", "create_container_timeout", "dan_conf", "enable_cpu_quota",
                "enable_cgroup_swap_control", "enable_metrics", "agent_name", "name", "keep_abnormal",
            ],
            "factory": ["vm_cache_endpoint"],
        ]
    }()
}
