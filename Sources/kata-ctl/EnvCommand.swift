import ArgumentParser
import Foundation
import Hypervisor
import Runtime
import Shim

/// `kata-ctl env` (Kata's `kata-runtime env`): versions, the configuration file the shim would
/// read and its resolved values, the hypervisor, kernel and initrd, and what this host can run.
/// Problems are listed with their fix; any problem makes the exit status 1.
struct EnvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env",
        abstract: "Show the configuration the shim would use, the hypervisor, kernel, initrd and host capabilities.")

    @Option(help: "A configuration file to read instead of the shim's search (KATA_CONF_FILE, then /etc/kata-swift/configuration.toml).")
    var config: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let report: EnvReport
        do throws(ConfigError) {
            report = try EnvReport.gather(configPath: config, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("kata-ctl env: \(error)\nfix the file, or name another with --config or KATA_CONF_FILE\n".utf8))
            throw ExitCode(1)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
        if !report.problems.isEmpty { throw ExitCode(1) }
    }
}

/// What `kata-ctl env` reports.
struct EnvReport: Encodable {
    struct Meta: Encodable { var version: String }
    struct RuntimeSection: Encodable {
        var configPath: String?
        var configSource: String
        var warnings: [String]
        var debug: Bool
        var sandboxDir: String
    }
    struct HypervisorSection: Encodable {
        var backend: String
        var path: String
        var version: String?
        var machineType: String
        var vcpus: Int
        var memoryMiB: Int
        var debug: Bool
        var enableAnnotations: [String]
        var validHypervisorPaths: [String]
        var seccompSandbox: Bool
        var user: String?
    }
    struct Image: Encodable {
        var path: String
        var present: Bool
    }
    struct KernelSection: Encodable {
        var path: String
        var present: Bool
        var parameters: String
    }
    struct AgentSection: Encodable {
        var debugConsole: Bool
        var dialTimeoutSeconds: Int
        var logLevel: String
    }
    struct Host: Encodable {
        var kernel: String
        var architecture: String
        var cpus: Int
        var kvmDevice: Bool
        var kvmRunsGuestUserspace: Bool
        var kvmReason: String
        var qemuAvailable: Bool
        var qemuReason: String
        var autoChoice: String?
    }

    var meta: Meta
    var runtime: RuntimeSection
    var hypervisor: HypervisorSection
    var kernel: KernelSection
    /// The guest's root: the initramfs, or (Kata's `image`) a read-only disk image; one of them.
    var initrd: Image?
    var image: Image?
    var agent: AgentSection
    var host: Host
    /// Each with its fix.
    var problems: [String]

    static func gather(configPath: String?, environment: [String: String]) throws(ConfigError) -> EnvReport {
        var warnings: [ConfigWarning] = []
        let (config, source) = try RuntimeConfig.load(configPath: configPath, environment: environment, warnings: &warnings)
        let verdict = BackendProbe.verdict(qemuBinary: config.qemuPath)
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let machine = withUnsafeBytes(of: name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let usesQEMU = config.backend == .qemu || (config.backend == .auto && verdict.autoChoice == .qemu)
        var problems: [String] = []
        let kernelPresent = access(config.kernel, R_OK) == 0
        let rootKey = config.image == nil ? "initrd" : "image"
        let rootPath = config.image ?? config.initrd
        let rootPresent = access(rootPath, R_OK) == 0
        let where_ = source.path.map { "in \($0)" } ?? "by a configuration file"
        if !kernelPresent {
            problems.append("kernel \(config.kernel) is missing: run `make install`, or set kernel of the [hypervisor.*] table \(where_)")
        }
        if !rootPresent {
            problems.append("\(rootKey) \(rootPath) is missing: run `make install`, or set \(rootKey) of the [hypervisor.*] table \(where_)")
        }
        if usesQEMU, !verdict.qemuAvailable {
            problems.append("QEMU cannot run: \(verdict.qemuReason) (install qemu-system-x86, or set path of [hypervisor.qemu] \(where_))")
        }
        if config.backend == .kvm, !verdict.kvmUserspace {
            problems.append("the kvm backend cannot run a guest here: \(verdict.kvmReason) (use [hypervisor.qemu], or runtime.hypervisor_name = \"auto\")")
        }
        if verdict.autoChoice == nil { problems.append("no hypervisor backend can run a guest on this host (kata-ctl check says why)") }
        return EnvReport(
            meta: Meta(version: ShimMain.version),
            runtime: RuntimeSection(
                configPath: source.path, configSource: configPath.map { "\($0) (--config)" } ?? source.description,
                warnings: warnings.map(\.description),
                debug: config.logLevel == "debug" || config.logLevel == "trace", sandboxDir: config.sandboxDirectory),
            hypervisor: HypervisorSection(
                backend: config.backend == .auto ? "auto (here: \(verdict.autoChoice?.rawValue ?? "none"))" : config.backend.rawValue,
                path: usesQEMU ? config.qemuPath : "in-process (containerd-shim-kata-v2)",
                version: usesQEMU ? Self.qemuVersion(config.qemuPath) : nil, machineType: usesQEMU ? "microvm" : "kata-swift",
                vcpus: config.vcpus, memoryMiB: config.memoryMiB, debug: config.hypervisorDebug,
                enableAnnotations: config.enableAnnotations, validHypervisorPaths: config.validHypervisorPaths,
                seccompSandbox: config.qemuSandbox, user: config.qemuUser),
            kernel: KernelSection(path: config.kernel, present: kernelPresent, parameters: config.kernelParams.joined(separator: " ")),
            initrd: config.image == nil ? Image(path: rootPath, present: rootPresent) : nil,
            image: config.image == nil ? nil : Image(path: rootPath, present: rootPresent),
            agent: AgentSection(
                debugConsole: config.debugConsole, dialTimeoutSeconds: config.agentDialTimeoutSeconds, logLevel: config.agentLogLevel),
            host: Host(
                kernel: release, architecture: machine, cpus: ProcessInfo.processInfo.activeProcessorCount,
                kvmDevice: access("/dev/kvm", R_OK | W_OK) == 0, kvmRunsGuestUserspace: verdict.kvmUserspace,
                kvmReason: verdict.kvmReason, qemuAvailable: verdict.qemuAvailable, qemuReason: verdict.qemuReason,
                autoChoice: verdict.autoChoice?.rawValue),
            problems: problems)
    }

    /// The first line of `qemu --version`.
    static func qemuVersion(_ path: String) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["--version"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").first.map(String.init)
    }

    /// TOML, like `kata-runtime env`.
    var text: String {
        func q(_ s: String?) -> String { s.map { "\"\($0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\"" } ?? "\"\"" }
        func list(_ items: [String]) -> String { "[" + items.map { q($0) }.joined(separator: ", ") + "]" }
        return """
            [Meta]
              Version = \(q(meta.version))

            [Runtime]
              Config = \(q(runtime.configPath))
              ConfigSource = \(q(runtime.configSource))
              Debug = \(runtime.debug)
              SandboxDir = \(q(runtime.sandboxDir))
              Warnings = \(list(runtime.warnings))

            [Hypervisor]
              Backend = \(q(hypervisor.backend))
              Path = \(q(hypervisor.path))
              Version = \(q(hypervisor.version))
              MachineType = \(q(hypervisor.machineType))
              VCPUs = \(hypervisor.vcpus)
              MemoryMiB = \(hypervisor.memoryMiB)
              Debug = \(hypervisor.debug)
              EnableAnnotations = \(list(hypervisor.enableAnnotations))
              ValidHypervisorPaths = \(list(hypervisor.validHypervisorPaths))
              SeccompSandbox = \(hypervisor.seccompSandbox)
              User = \(q(hypervisor.user))

            [Kernel]
              Path = \(q(kernel.path))
              Present = \(kernel.present)
              Parameters = \(q(kernel.parameters))

            [\(image == nil ? "Initrd" : "Image")]
              Path = \(q((image ?? initrd)?.path))
              Present = \((image ?? initrd)?.present ?? false)

            [Agent]
              DebugConsole = \(agent.debugConsole)
              DialTimeout = \(agent.dialTimeoutSeconds)
              LogLevel = \(q(agent.logLevel))

            [Host]
              Kernel = \(q(host.kernel))
              Architecture = \(q(host.architecture))
              CPUs = \(host.cpus)
              KVMDevice = \(host.kvmDevice)
              KVMRunsGuestUserspace = \(host.kvmRunsGuestUserspace)
              KVMReason = \(q(host.kvmReason))
              QEMUAvailable = \(host.qemuAvailable)
              QEMUReason = \(q(host.qemuReason))
              AutoChoice = \(q(host.autoChoice))

            [Problems]
              List = \(list(problems))
            """
    }
}
