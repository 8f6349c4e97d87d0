// Kata's configuration schema: Kata's own QEMU file (Tests/Kata) loads as written, each key we
// implement lands where it should, unimplemented keys are warnings naming key and line, wrong types
// and impossible values are errors naming file, line and key; and Kata's pod annotations.

import Foundation
import Hypervisor
import Testing
@testable import Runtime

@Suite struct KataSchemaTests {
    static let file = "/etc/kata-swift/configuration.toml"
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Kata's QEMU configuration with the placeholders filled in.
    static func kataQEMUFile(kernel: String = "/k/vmlinux", initrd: String = "/k/initrd.cpio") throws -> String {
        try String(contentsOfFile: root + "/Tests/Kata/configuration-qemu.toml.in", encoding: .utf8)
            .replacingOccurrences(of: "@KERNEL@", with: kernel).replacingOccurrences(of: "@INITRD@", with: initrd)
            .replacingOccurrences(of: "@QEMU@", with: "/usr/bin/qemu-system-x86_64")
    }

    @Test func kataQEMUFileLoadsAsWritten() throws {
        var warnings: [ConfigWarning] = []
        let config = try RuntimeConfig.parse(try Self.kataQEMUFile(), file: Self.file, warnings: &warnings)
        #expect(config.backend == .qemu)
        #expect(config.qemuPath == "/usr/bin/qemu-system-x86_64")
        #expect(config.kernel == "/k/vmlinux")
        #expect(config.initrd == "/k/initrd.cpio")
        #expect(config.vcpus == 1)
        #expect(config.memoryMiB == 2048)
        #expect(config.agentDialTimeoutSeconds == 45)
        #expect(config.enableAnnotations == ["enable_iommu", "virtio_fs_extra_args", "kernel_params", "default_vcpus", "default_memory"])
        #expect(config.validHypervisorPaths == ["/usr/bin/qemu-system-x86_64"])
        #expect(!config.debugConsole)
        // What asks for something we do not do is named, with its line; Kata's "off" values are not.
        let keys = warnings.map(\.key)
        for key in [
            "hypervisor.qemu.machine_type", "hypervisor.qemu.rootfs_type", "hypervisor.qemu.cpu_features",
            "hypervisor.qemu.virtio_fs_daemon", "hypervisor.qemu.block_device_driver", "runtime.disable_guest_seccomp",
            "runtime.vfio_mode", "hypervisor.qemu.valid_entropy_sources",
        ] {
            #expect(keys.contains(key), "no warning for \(key): \(warnings)")
        }
        for key in ["hypervisor.qemu.default_maxvcpus", "hypervisor.qemu.pflashes", "runtime.sandbox_cgroup_only", "agent.kata.kernel_modules"] {
            #expect(!keys.contains(key), "warned about \(key), whose value asks for nothing")
        }
        let machine = try #require(warnings.first { $0.key == "hypervisor.qemu.machine_type" })
        #expect(machine.line == 12)
        #expect(machine.description.contains("microvm"))
        #expect(!warnings.contains { $0.message.contains("unknown") }, "\(warnings.filter { $0.message.contains("unknown") })")
    }

    @Test func everyImplementedKey() throws {
        var warnings: [ConfigWarning] = []
        let config = try RuntimeConfig.parse("""
            [hypervisor.kvm]
            kernel = "/k/vmlinux"
            initrd = "/k/initrd"
            default_vcpus = 2
            default_memory = 512
            kernel_params = "quiet  loglevel=3"
            enable_debug = true
            shared_fs = "virtio-fs"
            enable_annotations = [
                "default_vcpus",   # a comment inside the array
                "kernel_.*",
            ]
            [agent.kata]
            debug_console_enabled = true
            dial_timeout = 30
            enable_debug = true
            [runtime]
            enable_debug = true
            sandbox_dir = "/tmp/ks"
            [factory]
            vm_cache_number = 2
            enable_template = true
            """, file: Self.file, warnings: &warnings)
        #expect(warnings.isEmpty, "\(warnings)")
        #expect(config.warmSandboxes == 2 && config.templates && config.templateDirectory == "/tmp/ks/.template")
        let elsewhere = try RuntimeConfig.parse("[factory]\ntemplate_path = \"/var/lib/ks-templates\"", file: Self.file)
        #expect(!elsewhere.templates && elsewhere.templateDirectory == "/var/lib/ks-templates")
        #expect(throws: ConfigError.self) { try RuntimeConfig.parse("[factory]\ntemplate_path = \"templates\"", file: Self.file) }
        #expect(config.backend == .kvm)
        #expect(config.kernel == "/k/vmlinux" && config.initrd == "/k/initrd")
        #expect(config.vcpus == min(2, ProcessInfo.processInfo.activeProcessorCount))
        #expect(config.memoryMiB == 512)
        #expect(config.kernelParams == ["quiet", "loglevel=3"])
        #expect(config.hypervisorDebug)
        #expect(config.enableAnnotations == ["default_vcpus", "kernel_.*"])
        #expect(config.debugConsole)
        #expect(config.agentDialTimeoutSeconds == 30)
        #expect(config.agentLogLevel == "debug")
        #expect(config.logLevel == "debug")
        #expect(config.sandboxDirectory == "/tmp/ks")
        // QEMU's own keys belong to [hypervisor.qemu].
        let qemu = try RuntimeConfig.parse("""
            [hypervisor.qemu]
            path = "/opt/qemu"
            seccompsandbox = ""
            user = "1000:1000"
            valid_hypervisor_paths = ["/opt/*"]
            """, file: Self.file)
        #expect(qemu.backend == .qemu && qemu.qemuPath == "/opt/qemu" && !qemu.qemuSandbox && qemu.qemuUser == "1000:1000")
        #expect(qemu.validHypervisorPaths == ["/opt/*"])
    }

    @Test func imageOrInitrdButNotBoth() throws {
        let image = try RuntimeConfig.parse(
            "[hypervisor.qemu]\nimage = \"/k/agent.img\"\nreclaim_guest_freed_memory = false\n", file: Self.file)
        #expect(image.image == "/k/agent.img" && !image.reclaimFreedMemory)
        let vm = PodVM.hypervisorConfig(image, paths: try SandboxPaths(sandboxDirectory: "/run/ks", sandboxID: "s"))
        #expect(vm.imagePath == "/k/agent.img" && vm.initrdPath == nil && !vm.reclaimFreedMemory)
        let initrd = try RuntimeConfig.parse("[hypervisor.qemu]\ninitrd = \"/k/i.cpio\"\nimage = \"\"\n", file: Self.file)
        #expect(initrd.image == nil && initrd.initrd == "/k/i.cpio" && initrd.reclaimFreedMemory)
        #expect(initrd.entropySource == "/dev/urandom")
        let noRng = try RuntimeConfig.parse("[hypervisor.qemu]\nentropy_source = \"\"\n", file: Self.file)
        #expect(PodVM.hypervisorConfig(noRng, paths: try SandboxPaths(sandboxDirectory: "/run/ks", sandboxID: "s")).qemuEntropySource == nil)
        let both = #expect(throws: ConfigError.self) {
            try RuntimeConfig.parse("[hypervisor.qemu]\ninitrd = \"/k/i.cpio\"\nimage = \"/k/a.img\"\n", file: Self.file)
        }
        #expect(both?.description.contains(":3: hypervisor.qemu.image: set both image and initrd") == true, "\(String(describing: both))")
        #expect(throws: ConfigError.self) { try RuntimeConfig.parse("[hypervisor.qemu]\nimage = \"a.img\"\n", file: Self.file) }
    }

    @Test func hypervisorNamePicksTheTable() throws {
        let both = "[hypervisor.qemu]\ndefault_vcpus = 1\n[hypervisor.kvm]\ndefault_memory = 512\n"
        let error = #expect(throws: ConfigError.self) { try RuntimeConfig.parse(both, file: Self.file) }
        #expect(error?.description.contains("runtime.hypervisor_name") == true)
        var warnings: [ConfigWarning] = []
        let kvm = try RuntimeConfig.parse(both + "[runtime]\nhypervisor_name = \"kvm\"\n", file: Self.file, warnings: &warnings)
        #expect(kvm.backend == .kvm && kvm.memoryMiB == 512)
        #expect(warnings.map(\.key) == ["[hypervisor.qemu]"])
        let auto = try RuntimeConfig.parse("[hypervisor.qemu]\ndefault_memory = 300\n[runtime]\nhypervisor_name = \"auto\"\n", file: Self.file)
        #expect(auto.backend == .auto && auto.memoryMiB == 300)
        #expect(try RuntimeConfig.parse("", file: Self.file).backend == .auto)
    }

    @Test(arguments: [
        ("[hypervisor.qemu]\ndefault_vcpus = \"2\"\n", 2, "hypervisor.qemu.default_vcpus must be of type integer, not string"),
        ("[hypervisor.qemu]\n\ndefault_memory = 32\n", 3, "hypervisor.qemu.default_memory: 32 MiB is less than 64 MiB"),
        ("[hypervisor.qemu]\nshared_fs = \"virtio-9p\"\n", 2, "hypervisor.qemu.shared_fs: \"virtio-9p\": kata-swift shares files"),
        ("[runtime]\ninternetworking_model = \"macvtap\"\n", 2, "runtime.internetworking_model: \"macvtap\""),
        ("[agent.kata]\ndebug_console_enabled = \"yes\"\n", 2, "agent.kata.debug_console_enabled must be of type boolean"),
        ("[agent.kata]\nkernel_modules = [1]\n", 2, "agent.kata.kernel_modules must be of type array of strings, not array"),
        ("[hypervisor.qemu]\nenable_annotations = [\"(\"]\n", 2, "hypervisor.qemu.enable_annotations: \"(\" is not a regular expression"),
        ("[hypervisor.qemu]\nkernel = \"vmlinux\"\n", 2, "hypervisor.qemu.kernel: \"vmlinux\" is not an absolute path"),
        ("\n[hypervisor.clh]\npath = \"/x\"\n", 2, "[hypervisor.clh]: kata-swift runs QEMU"),
        ("[runtime]\nhypervisor_name = \"xen\"\n", 2, "runtime.hypervisor_name: \"xen\" is not one of"),
    ])
    func wrongTypesAndImpossibleValuesNameFileLineAndKey(text: String, line: Int, message: String) {
        let error = #expect(throws: ConfigError.self) { try RuntimeConfig.parse(text, file: Self.file) }
        let description = error?.description ?? ""
        #expect(description.hasPrefix("configuration \(Self.file):\(line): "), "\(description)")
        #expect(description.contains(message), "\(description)")
    }

    @Test func kataVcpuRule() {
        let host = ProcessInfo.processInfo.activeProcessorCount
        #expect(RuntimeConfig.kataVcpus(0) == 1)
        #expect(RuntimeConfig.kataVcpus(-1) == min(host, 64))
        #expect(RuntimeConfig.kataVcpus(1000) == min(host, 64))
    }

    // MARK: annotations

    static let annotated: RuntimeConfig = {
        var config = RuntimeConfig()
        config.enableAnnotations = ["default_vcpus", "default_memory", "kernel_.*", "path"]
        config.validHypervisorPaths = ["/opt/qemu-*/bin/qemu-system-x86_64"]
        return config
    }()

    @Test func allowedAnnotationsChangeTheConfiguration() throws {
        var warnings: [String] = []
        let config = try KataAnnotations.apply([
            "io.katacontainers.config.hypervisor.default_vcpus": "2",
            "io.katacontainers.config.hypervisor.default_memory": "512",
            "io.katacontainers.config.hypervisor.kernel_params": "quiet debug",
            "io.katacontainers.config.hypervisor.path": "/opt/qemu-9/bin/qemu-system-x86_64",
            "io.katacontainers.config.agent.enable_debug": "true",
            "io.katacontainers.config.runtime.experimental": "x",
            "io.kubernetes.cri.container-type": "sandbox",
        ], to: Self.annotated, warnings: &warnings)
        #expect(config.vcpus == min(2, ProcessInfo.processInfo.activeProcessorCount))
        #expect(config.memoryMiB == 512)
        #expect(config.kernelParams == ["quiet", "debug"])
        #expect(config.qemuPath == "/opt/qemu-9/bin/qemu-system-x86_64")
        #expect(config.agentLogLevel == "debug")
        #expect(warnings == ["annotation io.katacontainers.config.runtime.experimental: not implemented by kata-swift; ignored"])
    }

    @Test func annotationsNotEnabledAreErrorsNamingThem() {
        var warnings: [String] = []
        // Nothing enabled (the default): Kata refuses every hypervisor annotation.
        #expect(throws: ConfigError.annotation(
            name: "io.katacontainers.config.hypervisor.default_vcpus",
            reason: "not enabled by the configuration (enable_annotations = []); add \"default_vcpus\" to enable_annotations of its [hypervisor.*] table to allow it")) {
            try KataAnnotations.apply(["io.katacontainers.config.hypervisor.default_vcpus": "2"], to: RuntimeConfig(), warnings: &warnings)
        }
        // A name no pattern matches.
        let unmatched = #expect(throws: ConfigError.self) {
            try KataAnnotations.apply(["io.katacontainers.config.hypervisor.machine_type": "q35"], to: Self.annotated, warnings: &warnings)
        }
        #expect(unmatched?.description.hasPrefix("annotation io.katacontainers.config.hypervisor.machine_type: not enabled") == true)
        // Kata's rule is Go's regexp.MatchString: a pattern matches anywhere unless anchored.
        #expect(KataAnnotations.allowed("default_vcpus", by: ["default_"]))
        #expect(KataAnnotations.allowed("default_maxvcpus", by: ["vcpus"]))
        #expect(!KataAnnotations.allowed("default_maxvcpus", by: ["^default_vcpus$"]))
        #expect(!KataAnnotations.allowed("default_vcpus", by: []))
        // A path outside valid_hypervisor_paths, and values that are not what they claim.
        for (name, value) in [("path", "/usr/bin/evil"), ("default_vcpus", "two"), ("default_memory", "16")] {
            let error = #expect(throws: ConfigError.self) {
                try KataAnnotations.apply(["io.katacontainers.config.hypervisor." + name: value], to: Self.annotated, warnings: &warnings)
            }
            #expect(error?.description.contains("io.katacontainers.config.hypervisor." + name) == true)
        }
        #expect(throws: ConfigError.self) {
            try KataAnnotations.apply(["io.katacontainers.config.agent.enable_debug": "maybe"], to: Self.annotated, warnings: &warnings)
        }
    }
}
