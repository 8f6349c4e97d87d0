import ArgumentParser
import Foundation
import Runtime

/// Where the sandboxes of this host are: `--sandbox-dir`, or sandbox_dir of the configuration the
/// shim would read (or of `--config`). Shared by `list` and `monitor`.
struct SandboxDirectoryOptions: ParsableArguments {
    @Option(help: "A configuration file to read sandbox_dir from instead of the shim's search.")
    var config: String?

    @Option(help: "The sandbox directory (default: sandbox_dir of the configuration).")
    var sandboxDir: String?

    /// The directory; a configuration that cannot be read ends `command` with a message naming the fix.
    func resolve(for command: String) throws -> String {
        if let sandboxDir { return sandboxDir }
        do throws(ConfigError) {
            return try RuntimeConfig.load(configPath: config, environment: ProcessInfo.processInfo.environment).0.sandboxDirectory
        } catch {
            FileHandle.standardError.write(Data("kata-ctl \(command): \(error)\nfix the file, or give the directory with --sandbox-dir\n".utf8))
            throw ExitCode(1)
        }
    }
}
