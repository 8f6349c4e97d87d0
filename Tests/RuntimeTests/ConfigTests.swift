// RuntimeConfig: the TOML subset, our old keys (deprecated, still read), the search order, and
// errors that name file, key and line. The Kata schema: KataSchemaTests.swift.

import Foundation
import Hypervisor
import OCI
import Testing
@testable import Runtime

@Suite struct ConfigTests {
    static let file = "/etc/test/configuration.toml"

    @Test func everyOldKeyIsStillReadWithADeprecationWarning() throws {
        var warnings: [ConfigWarning] = []
        let config = try RuntimeConfig.parse("""
            # a comment
            [hypervisor]
            backend = "qemu"   # trailing comment
            kernel = "/k/vmlinux"
            initrd = '/k/initrd.cpio'
            vcpus = 2
            memory_mib = 1_024
            kernel_params = "quiet  loglevel=3"
            debug_console = true
            qemu_path = "/opt/qemu"
            qemu_sandbox = false
            qemu_user = "1000:1000"

            [agent]
            dial_timeout_s = 30
            log_level = "debug"

            [runtime]
            log_level = "warning"
            sandbox_dir = "/tmp/ks"
            """, file: Self.file, warnings: &warnings)
        #expect(config.backend == .qemu)
        #expect(config.kernel == "/k/vmlinux")
        #expect(config.initrd == "/k/initrd.cpio")
        #expect(config.vcpus == 2)
        #expect(config.memoryMiB == 1024)
        #expect(config.kernelParams == ["quiet", "loglevel=3"])
        #expect(config.debugConsole)
        #expect(config.qemuPath == "/opt/qemu")
        #expect(!config.qemuSandbox)
        #expect(config.qemuUser == "1000:1000")
        #expect(config.agentDialTimeoutSeconds == 30)
        #expect(config.agentLogLevel == "debug")
        #expect(config.logLevel == "warning")
        #expect(config.sandboxDirectory == "/tmp/ks")
        // Every old key but sandbox_dir (still a key) is deprecated, naming its replacement.
        #expect(warnings.count == 13, "\(warnings)")
        #expect(warnings.contains(ConfigWarning(
            file: Self.file, line: 6, key: "hypervisor.vcpus", message: "deprecated, still read; use hypervisor.<qemu|kvm>.default_vcpus")))
        #expect(warnings.contains { $0.key == "agent.dial_timeout_s" && $0.message.contains("agent.kata.dial_timeout") && $0.line == 15 })
    }

    @Test func emptyFileGivesDefaults() throws {
        #expect(try RuntimeConfig.parse("\n# nothing\n", file: Self.file) == RuntimeConfig())
        let defaults = RuntimeConfig()
        #expect(defaults.backend == .auto)
        #expect(defaults.kernel == "/usr/local/share/kata-swift/vmlinux")
        #expect(defaults.initrd == "/usr/local/share/kata-swift/initramfs-agent.cpio")
        #expect(defaults.sandboxDirectory == "/run/kata-swift")
        #expect(!defaults.debugConsole)
    }

    @Test func unknownKeysAreWarningsNamingThem() throws {
        var warnings: [ConfigWarning] = []
        _ = try RuntimeConfig.parse("[hypervisor]\nvcpus = 1\nvcpu = 2\n\n[network]\nx = 1\n", file: Self.file, warnings: &warnings)
        #expect(warnings.contains(ConfigWarning(file: Self.file, line: 3, key: "hypervisor.vcpu", message: "unknown key; ignored")))
        #expect(warnings.contains(ConfigWarning(file: Self.file, line: 6, key: "network.x", message: "unknown key; ignored")))
        #expect(warnings.first { $0.key == "network.x" }?.description == "configuration \(Self.file):6: network.x: unknown key; ignored")
    }

    @Test func wrongTypesNameKeyAndExpectedType() {
        #expect(throws: ConfigError.wrongType(file: Self.file, key: "hypervisor.vcpus", line: 2,
                                              expected: "integer", found: "string")) {
            try RuntimeConfig.parse("[hypervisor]\nvcpus = \"2\"\n", file: Self.file)
        }
        #expect(throws: ConfigError.wrongType(file: Self.file, key: "hypervisor.debug_console", line: 2,
                                              expected: "boolean", found: "integer")) {
            try RuntimeConfig.parse("[hypervisor]\ndebug_console = 1\n", file: Self.file)
        }
        let error = #expect(throws: ConfigError.self) {
            try RuntimeConfig.parse("[agent]\ndial_timeout_s = [1]\n", file: Self.file)
        }
        #expect(error?.description == "configuration \(Self.file):2: agent.dial_timeout_s must be of type integer, not array")
    }

    @Test func qemuConfinementDefaultsOnAndCanBeTurnedOff() throws {
        let defaults = RuntimeConfig()
        #expect(defaults.qemuSandbox)
        #expect(defaults.qemuUser == "kata-swift-qemu")
        #expect(try RuntimeConfig.parse("[hypervisor]\nqemu_user = \"\"\n", file: Self.file).qemuUser == nil)
        #expect(throws: ConfigError.self) { try RuntimeConfig.parse("[hypervisor]\nqemu_user = \"a b\"\n", file: Self.file) }
        #expect(throws: ConfigError.self) { try RuntimeConfig.parse("[hypervisor]\nqemu_sandbox = \"yes\"\n", file: Self.file) }
        // A uid per sandbox by default; the range can move, or be turned off (count 0).
        #expect(defaults.qemuUIDBase == 2_000_000_000 && defaults.qemuUIDCount == 1000)
        let moved = try RuntimeConfig.parse("[hypervisor.qemu]\nuid_base = 3000000\nuid_count = 0\n", file: Self.file)
        #expect(moved.qemuUIDBase == 3_000_000 && moved.qemuUIDCount == 0)
        #expect(throws: ConfigError.self) { try RuntimeConfig.parse("[hypervisor.qemu]\nuid_base = 0\n", file: Self.file) }
    }

    @Test func invalidValuesAreErrors() {
        #expect(throws: ConfigError.self) { try RuntimeConfig.parse("[hypervisor]\nbackend = \"xen\"\n", file: Self.file) }
        #expect(throws: ConfigError.self) { try RuntimeConfig.parse("[hypervisor]\nvcpus = 0\n", file: Self.file) }
        #expect(throws: ConfigError.self) { try RuntimeConfig.parse("[hypervisor]\nkernel = \"vmlinux\"\n", file: Self.file) }
        #expect(throws: ConfigError.self) { try RuntimeConfig.parse("[agent]\nlog_level = \"loud\"\n", file: Self.file) }
        let error = #expect(throws: ConfigError.self) {
            try RuntimeConfig.parse("[hypervisor]\nmemory_mib = 16\n", file: Self.file)
        }
        #expect(error?.description.contains("hypervisor.memory_mib") == true)
        #expect(error?.description.contains(Self.file + ":2") == true)
    }

    @Test(arguments: [
        ("[hypervisor\n", 1), ("[hypervisor]\nvcpus = \n", 2), ("[hypervisor]\nkernel = \"/a\n", 2),
        ("[a..b]\n", 1), ("[hypervisor]\nx.y = 1\n", 2), ("[a]\nb = 1\n[a.b]\n", 3),
        ("[agent.kata]\nkernel_modules = [\n  \"a\",\n", 2), ("[a]\nb = [[1]]\n", 2), ("[hypervisor]\nvcpus = 1 2\n", 2),
        ("[hypervisor]\nvcpus = 1.5\n", 2), ("[hypervisor]\n[hypervisor]\n", 2), ("[[x]]\n", 1),
        ("[hypervisor]\nvcpus = 1\nvcpus = 2\n", 3), ("[runtime]\nlog_level = \"\"\"x\"\"\"\n", 2),
        ("[hypervisor]\nkernel_params = [\"a\", 1]\n", 2), ("[hypervisor]\nkernel = \"\\q\"\n", 2),
    ])
    func syntaxErrorsNameTheLine(text: String, line: Int) {
        let error = #expect(throws: ConfigError.self) { try RuntimeConfig.parse(text, file: Self.file) }
        guard case .syntax(let file, let reported, _) = error else {
            Issue.record("not a syntax error: \(String(describing: error))")
            return
        }
        #expect(file == Self.file)
        #expect(reported == line)
    }

    @Test func searchOrder() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ks-config-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fromOptions = directory + "/options.toml", fromEnvironment = directory + "/env.toml"
        try "[hypervisor]\nvcpus = 3\n".write(toFile: fromOptions, atomically: true, encoding: .utf8)
        try "[hypervisor]\nvcpus = 4\n".write(toFile: fromEnvironment, atomically: true, encoding: .utf8)
        let environment = [RuntimeConfig.environmentVariable: fromEnvironment]

        let (a, sourceA) = try RuntimeConfig.load(configPath: fromOptions, environment: environment)
        #expect(a.vcpus == 3)
        #expect(sourceA == .runtimeOptions(fromOptions))
        let (b, sourceB) = try RuntimeConfig.load(configPath: nil, environment: environment)
        #expect(b.vcpus == 4)
        #expect(sourceB == .environment(fromEnvironment))
        let (c, sourceC) = try RuntimeConfig.load(configPath: "", environment: [:])
        if access(RuntimeConfig.defaultPath, F_OK) != 0 {
            #expect(c == RuntimeConfig())
            #expect(sourceC == .builtIn)
        }
        // A file that was asked for must exist.
        let missing = directory + "/missing.toml"
        let error = #expect(throws: ConfigError.self) { try RuntimeConfig.load(configPath: nil, environment: [RuntimeConfig.environmentVariable: missing]) }
        #expect(error?.description.contains(missing) == true)
    }

    @Test func installedDefaultIsTheBuiltInDefaultsOnQEMU() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let template = try String(contentsOfFile: root + "/docs/configuration.toml.in", encoding: .utf8)
        var warnings: [ConfigWarning] = []
        let config = try RuntimeConfig.parse(
            template.replacingOccurrences(of: "@SHAREDIR@", with: "/usr/local/share/kata-swift"), file: "configuration.toml",
            warnings: &warnings)
        #expect(warnings.isEmpty, "\(warnings)")
        #expect(config.backend == .qemu)
        var expected = RuntimeConfig()
        expected.backend = .qemu
        expected.validHypervisorPaths = ["/usr/bin/qemu-system-x86_64"]
        // The installed file boots from the disk image; without a file the guest boots from the
        // initramfs, the one image every build of ours has had.
        expected.image = "/usr/local/share/kata-swift/agent.img"
        #expect(config == expected)
    }

    @Test func debugConsoleAddsCmdlineAndHybridSocket() throws {
        var config = RuntimeConfig()
        config.kernelParams = ["quiet"]
        let paths = try SandboxPaths(sandboxDirectory: "/run/kata-swift", sandboxID: "pod1")
        let off = PodVM.hypervisorConfig(config, paths: paths)
        #expect(off.hybridVsockPath == nil)
        #expect(!off.cmdlineExtras.contains("agent.debug_console"))
        config.debugConsole = true
        let on = PodVM.hypervisorConfig(config, paths: paths)
        #expect(on.hybridVsockPath == "/run/kata-swift/pod1/hvsock")
        #expect(on.cmdlineExtras == ["quiet", "agent.log=info", "agent.debug_console"])
        #expect(on.sharedDirectories == [SharedDirectory(tag: "kataShared", hostPath: "/run/kata-swift/pod1/shared")])
    }
}

@Suite struct StaticSizingTests {
    @Test func theFirstContainersLimitsGrowTheVM() {
        var config = RuntimeConfig()
        config.memoryMiB = 128
        config.vcpus = 1
        let limited = config.sized(for: OCIResources(
            memory: .init(limit: 300 * 1024 * 1024 + 1), cpu: .init(quota: 150_000, period: 100_000)))
        #expect(limited.memoryMiB == 128 + 301)
        #expect(limited.vcpus == RuntimeConfig.kataVcpus(1 + 2))
        // Unlimited, absent, zero or negative: nothing added.
        for resources in [nil, OCIResources(), OCIResources(memory: .init(limit: -1), cpu: .init(quota: -1, period: 100_000)),
                          OCIResources(memory: .init(limit: 0), cpu: .init(quota: 50_000, period: 0))] {
            let same = config.sized(for: resources)
            #expect(same.memoryMiB == 128 && same.vcpus == 1)
        }
        // Never past what a backend accepts.
        #expect(config.sized(for: OCIResources(memory: .init(limit: Int64.max))).memoryMiB == 65536)
    }
}

extension StaticSizingTests {
    @Test func hugeLimitsDoNotOverflow() {
        let config = RuntimeConfig()
        let huge = config.sized(for: OCIResources(cpu: .init(quota: Int64.max, period: 1)))
        #expect(huge.vcpus == RuntimeConfig.kataVcpus(config.vcpus + 64))
        #expect(config.sized(for: OCIResources(cpu: .init(quota: 1, period: UInt64.max))).vcpus == RuntimeConfig.kataVcpus(config.vcpus + 1))
    }
}
