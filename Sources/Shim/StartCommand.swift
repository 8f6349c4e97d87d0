// `containerd-shim-kata-v2 ... start`: containerd runs this in the bundle directory and reads its
// stdout+stderr (merged) as the shim's address. It creates the socket, re-execs itself as the daemon
// holding the listener as fd 3, writes `address` into the bundle, and prints exactly the address.
// Containers joining a CRI pod get the pod shim's address and spawn nothing.

import OCI
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A failed `start`.
public enum StartError: Error, CustomStringConvertible {
    case readOptions(errno: Int32)
    case sandboxShimMissing(sandboxID: String, socket: String)

    public var description: String {
        switch self {
        case .readOptions(let errno): "read runtime options from stdin: \(Errno(errno))"
        case .sandboxShimMissing(let sandboxID, let socket):
            "no shim is serving sandbox \(sandboxID) (no listener on \(socket)); create the sandbox first"
        }
    }
}

/// What `start` decided.
public struct StartResult: Equatable, Sendable {
    public var address: String
    /// The daemon's pid, or nil when an existing shim serves this task.
    public var daemonPID: Int32?
}

/// The `start` action.
public struct StartCommand {
    public var flags: ShimFlags
    public var bundle: BundleDirectory
    public var socketDirectory: String
    /// The program re-exec'd as the daemon (this executable).
    public var executable: String

    public init(flags: ShimFlags, bundle: BundleDirectory, socketDirectory: String = ShimSocket.defaultDirectory,
                executable: String? = nil) {
        self.flags = flags
        self.bundle = bundle
        self.socketDirectory = socketDirectory
        self.executable = executable ?? currentExecutablePath()
    }

    /// The socket of the shim for this task's group (the pod, or the task itself).
    public func socket(for spec: OCISpec) -> (socket: ShimSocket, joinsExistingSandbox: String?) {
        let group: String
        var joins: String?
        switch spec.criRole {
        case .single: group = flags.id
        case .sandbox(let id): group = id
        case .container(let sandboxID):
            group = sandboxID
            joins = sandboxID
        }
        let socket = ShimSocket(containerdAddress: flags.address, namespace: flags.namespace, groupID: group,
                                directory: socketDirectory)
        return (socket, joins)
    }

    /// Runs `start`; `optionsInput` is the descriptor carrying containerd's runtime options (read to EOF).
    public func run(optionsInput: Int32 = 0) throws -> StartResult {
        do {
            _ = try readToEnd(optionsInput)
        } catch {
            throw StartError.readOptions(errno: error.rawValue)
        }
        let spec = try bundle.readSpec()
        let (socket, joins) = socket(for: spec)
        if let sandboxID = joins {
            guard socket.canConnect() else {
                throw StartError.sandboxShimMissing(sandboxID: sandboxID, socket: socket.path)
            }
            try bundle.writeAddress(socket.address)
            return StartResult(address: socket.address, daemonPID: nil)
        }
        let listener: Int32
        do {
            listener = try socket.listen()
        } catch SocketError.listen(_, let code) where code == EADDRINUSE {
            // A shim already serves this group (containerd retried start): reuse it, as runc does.
            // A stale socket left by a dead shim is replaced.
            if socket.canConnect() {
                try bundle.writeAddress(socket.address)
                return StartResult(address: socket.address, daemonPID: nil)
            }
            socket.remove()
            listener = try socket.listen()
        }
        defer { close(listener) }
        let pid: pid_t
        do {
            pid = try spawnProcess(
                path: executable, arguments: flags.daemonArguments, environment: currentEnvironment(),
                fds: [nil, nil, nil, listener], newProcessGroup: true)
        } catch {
            socket.remove()
            throw error
        }
        do {
            try bundle.writeAddress(socket.address)
        } catch {
            kill(pid, SIGKILL)
            socket.remove()
            throw error
        }
        return StartResult(address: socket.address, daemonPID: pid)
    }
}
