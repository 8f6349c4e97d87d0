import ArgumentParser
import Foundation
import Glibc
import Runtime
import SystemSupport

/// `kata-ctl exec <sandbox-id>`: a shell in the sandbox's guest through the agent's debug console
/// (vsock port 1026), reached over the sandbox's hybrid vsock socket. Both are off unless the
/// configuration turns them on (docs/debugging.md).
struct ExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Open a shell in a sandbox's guest through the agent's debug console.",
        discussion: """
            Connects to the sandbox's hybrid vsock socket (<sandbox_dir>/<sandbox-id>/hvsock) and \
            asks for the guest's debug console (CONNECT 1026). On a terminal, the local terminal is \
            raw until the shell ends; Ctrl-] leaves at once. With stdin not a terminal, its bytes are \
            typed into the shell, and at its end kata-ctl types ^D and `exit`; it returns when the shell ends.
            """)

    @Argument(help: "The sandbox id.") var sandboxID: String
    @Option(help: "The hybrid vsock socket (default: <sandbox_dir>/<sandbox-id>/hvsock, sandbox_dir from the configuration).") var socket: String?
    @Option(help: "The guest's debug console vsock port.") var port: UInt32 = 1026
    @Option(help: "Seconds to wait for the guest to accept the connection.") var timeout: Double = 15

    @Option(help: "A configuration file to read sandbox_dir from instead of the shim's search.")
    var config: String?

    /// The configuration's sandbox_dir (the shim's search), else the default.
    var runtimeRoot: String {
        (try? RuntimeConfig.load(configPath: config, environment: ProcessInfo.processInfo.environment))?.0.sandboxDirectory
            ?? RuntimeConfig().sandboxDirectory
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        do throws(ExecError) {
            let path = try resolveSocket()
            let connection = try DebugConsoleClient.connect(path: path, port: port, timeoutSeconds: timeout)
            try DebugConsoleClient.relay(connection, sandboxID: sandboxID)
        } catch {
            FileDescriptor.stderrLine("kata-ctl exec: \(error)")
            throw ExitCode(1)
        }
    }

    /// The socket path, with an error that says what is missing when it is not there.
    func resolveSocket() throws(ExecError) -> String {
        if let socket { return socket }
        guard !sandboxID.isEmpty, !sandboxID.contains("/"), sandboxID != ".", sandboxID != ".." else {
            throw .invalidSandboxID(sandboxID)
        }
        let directory = "\(runtimeRoot)/\(sandboxID)"
        let path = "\(directory)/hvsock"
        var st = stat()
        if stat(path, &st) == 0 { return path }
        if stat(directory, &st) != 0 { throw .noSandbox(sandboxID, directory: directory) }
        throw .noHybridSocket(sandboxID, path: path)
    }
}

/// Why `kata-ctl exec` could not open or keep a session.
enum ExecError: Error, CustomStringConvertible {
    case invalidSandboxID(String)
    case noSandbox(String, directory: String)
    case noHybridSocket(String, path: String)
    case socketMissing(String)
    case notListening(String)
    case connect(String, Errno)
    case refused(path: String, port: UInt32)
    case badAnswer(String)
    case timedOut(port: UInt32, seconds: Double)
    case io(String, Errno)
    case terminal(Errno)

    var description: String {
        switch self {
        case .invalidSandboxID(let id):
            "invalid sandbox id '\(id)'"
        case .noSandbox(let id, let directory):
            "no sandbox '\(id)' on this host (\(directory) does not exist): `kata-ctl list` shows the sandboxes here"
        case .noHybridSocket(let id, let path):
            "sandbox '\(id)' has no hybrid vsock socket (\(path)): its configuration does not enable the debug console; set debug_console_enabled = true under [agent.kata] and start the pod again"
        case .socketMissing(let path):
            "\(path) does not exist"
        case .notListening(let path):
            "nothing listens on \(path): the sandbox's VM is not running (stale socket)"
        case .connect(let path, let errno):
            "cannot connect to \(path): \(errno)"
        case .refused(let path, let port):
            "the guest refused vsock port \(port) (via \(path)): its debug console is not enabled (kernel parameter agent.debug_console)"
        case .badAnswer(let line):
            "unexpected answer from the hybrid vsock socket: \(line.debugDescription)"
        case .timedOut(let port, let seconds):
            "the guest did not answer on vsock port \(port) within \(seconds) s"
        case .io(let what, let errno):
            "\(what): \(errno)"
        case .terminal(let errno):
            "cannot put the terminal in raw mode: \(errno)"
        }
    }
}
