// Opening the stdio containerd asks for (cd pkg/process/io.go): a FIFO path (no scheme or fifo://),
// file:///path (appended to), binary:///path?args (a logging binary reading fd 3 and fd 4), or
// nothing at all (null IO). No open here ever blocks: FIFOs are opened O_RDWR for output and
// O_RDONLY|O_NONBLOCK for input, so an RPC never waits for the client's end.

import Dispatch
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The stdio fields of a Create or Exec request.
public struct StdioRequest: Equatable, Sendable {
    public var stdin: String
    public var stdout: String
    public var stderr: String
    public var terminal: Bool

    public init(stdin: String = "", stdout: String = "", stderr: String = "", terminal: Bool = false) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.terminal = terminal
    }

    public var isNull: Bool { stdin.isEmpty && stdout.isEmpty && stderr.isEmpty }
}

/// Where an output URI points.
enum OutputTarget: Equatable {
    case fifo(String)
    case file(String)
    case binary(path: String, arguments: [String])

    init(uri: String) throws(StdioError) {
        guard let schemeEnd = uri.firstRange(of: "://") else {
            self = .fifo(uri)
            return
        }
        let scheme = uri[..<schemeEnd.lowerBound]
        guard let components = URLComponents(string: uri), !components.path.isEmpty else { throw .badURI(uri) }
        switch scheme {
        case "fifo": self = .fifo(components.path)
        case "file": self = .file(components.path)
        case "binary":
            var arguments: [String] = []
            for item in components.queryItems ?? [] {
                arguments.append(item.name)
                if let value = item.value, !value.isEmpty { arguments.append(value) }
            }
            self = .binary(path: components.path, arguments: arguments)
        default: throw .badURI(uri)
        }
    }
}

/// Opens the host ends of a process's stdio.
public enum StdioEndpoints {
    /// Opens everything `request` names. `containerID`/`namespace` go to logging binaries' environment.
    public static func open(_ request: StdioRequest, containerID: String, namespace: String) throws -> ProcessStdio {
        var stdio = ProcessStdio(terminal: request.terminal)
        if !request.stdin.isEmpty {
            let fd = Glibc.open(request.stdin, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { throw StdioError.open(path: request.stdin, errno: errno) }
            stdio.stdin = try FDReader(fd: fd, label: "\(containerID).stdin")
        }
        do {
            if !request.stdout.isEmpty {
                switch try OutputTarget(uri: request.stdout) {
                case .fifo(let path):
                    stdio.stdout = try openFIFOWriter(path, label: "\(containerID).stdout")
                    if !request.terminal && !request.stderr.isEmpty {
                        stdio.stderr = try openFIFOWriter(try fifoPath(request.stderr), label: "\(containerID).stderr")
                    }
                case .file(let path):
                    stdio.stdout = try openFileWriter(path, label: "\(containerID).stdout")
                    if !request.terminal { stdio.stderr = try openFileWriter(path, label: "\(containerID).stderr") }
                case .binary(let path, let arguments):
                    let (out, err) = try LoggingBinary.start(
                        path: path, arguments: arguments, containerID: containerID, namespace: namespace)
                    stdio.stdout = out
                    if request.terminal { closeDetached(err) } else { stdio.stderr = err }
                }
            } else if !request.terminal && !request.stderr.isEmpty {
                stdio.stderr = try openFIFOWriter(try fifoPath(request.stderr), label: "\(containerID).stderr")
            }
        } catch {
            closeDetached(stdio.stdin)
            closeDetached(stdio.stdout)
            throw error
        }
        return stdio
    }

    private static func fifoPath(_ uri: String) throws(StdioError) -> String {
        guard case .fifo(let path) = try OutputTarget(uri: uri) else { throw .badURI(uri) }
        return path
    }

    /// O_RDWR: never blocks on open, and the shim itself counts as a reader, so writes never fail
    /// with EPIPE when the client goes away for a moment.
    private static func openFIFOWriter(_ path: String, label: String) throws(StdioError) -> FDWriter {
        let fd = Glibc.open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .open(path: path, errno: errno) }
        return FDWriter(fd: fd, label: label)
    }

    private static func openFileWriter(_ path: String, label: String) throws(StdioError) -> FDWriter {
        var directory = ""
        for component in path.split(separator: "/").dropLast() {
            directory += "/" + component
            mkdir(directory, 0o755)
        }
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .open(path: path, errno: errno) }
        return FDWriter(fd: fd, label: label)
    }

    /// Closes a stream from synchronous code (cleanup after a failed open).
    private static func closeDetached(_ stream: (any StdioWriter)?) {
        guard let stream else { return }
        Task { await stream.close() }
    }

    private static func closeDetached(_ stream: (any StdioReader)?) {
        guard let stream else { return }
        Task { await stream.close() }
    }
}
