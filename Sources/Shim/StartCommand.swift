// `containerd-shim-kata-v2 ... start`: containerd runs this in the bundle directory and reads its
// stdout+stderr (merged) as the shim's address. It creates the socket, re-execs itself as the daemon
// holding the listener as fd 3, writes `address` into the bundle, and prints exactly the address.
// Containers joining a CRI pod get the pod shim's address and spawn nothing.
// With a warm pool configured (docs/warm-sandboxes.md), a new pod is first offered to a warm shim,
// which takes over the pod's socket; either way `start` then tops the pool up.

import CSupport
import ContainerdAPI
import OCI
import SwiftProtobuf
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
    /// The warm sandbox that took the pod, if one did.
    public var warmSandbox: String? = nil
    /// Warm shims spawned to top the pool up.
    public var spawnedWarm: [String] = []
}

/// Where a pod's warm sandboxes wait, and whether this pod may take one.
public struct WarmPoolPlan: Sendable, Equatable {
    public var pool: WarmPool
    /// nil when the pod may take a warm sandbox; otherwise why it boots its own.
    public var ineligible: String?
    /// The configuration file the warm sandboxes boot with (nil: the default search).
    public var configPath: String?

    public init(pool: WarmPool, ineligible: String?, configPath: String?) {
        self.pool = pool
        self.ineligible = ineligible
        self.configPath = configPath
    }
}

/// The executable's answer to "is there a warm pool for this pod" (the Runtime module reads the
/// configuration): nil when none is configured. Arguments: the pod's spec, the configuration
/// path containerd passed (runtime options), the environment and containerd's address.
public typealias WarmPoolLookup = @Sendable (OCISpec, String?, [String: String], String) -> WarmPoolPlan?

/// The `start` action.
public struct StartCommand {
    public var flags: ShimFlags
    public var bundle: BundleDirectory
    public var socketDirectory: String
    /// The program re-exec'd as the daemon (this executable).
    public var executable: String
    public var warmPool: WarmPoolLookup?
    /// Where `start` says what it did besides the address (containerd shows start's output to
    /// nobody but as the address; this goes to the bundle's log).
    public var log: @Sendable (String) -> Void

    public init(flags: ShimFlags, bundle: BundleDirectory, socketDirectory: String = ShimSocket.defaultDirectory,
                executable: String? = nil, warmPool: WarmPoolLookup? = nil, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.flags = flags
        self.bundle = bundle
        self.socketDirectory = socketDirectory
        self.executable = executable ?? currentExecutablePath()
        self.warmPool = warmPool
        self.log = log
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
        let options = try Self.readOptions(optionsInput)
        let spec = try bundle.readSpec()
        let (socket, joins) = socket(for: spec)
        if let sandboxID = joins {
            guard socket.canConnect() else {
                throw StartError.sandboxShimMissing(sandboxID: sandboxID, socket: socket.path)
            }
            try bundle.writeAddress(socket.address)
            return StartResult(address: socket.address, daemonPID: nil)
        }
        guard let listener = try listen(on: socket) else {
            // A shim already serves this group (containerd retried start): reuse it, as runc does.
            try bundle.writeAddress(socket.address)
            return StartResult(address: socket.address, daemonPID: nil)
        }
        defer { close(listener) }
        let plan = warmPlan(spec: spec, options: options)
        if let plan, let claimed = try claimWarm(plan, listener: listener, socket: socket) { return claimed }
        let pid = try spawnDaemon(listener: listener, socket: socket)
        var result = StartResult(address: socket.address, daemonPID: pid)
        if let plan { result.spawnedWarm = refill(plan) }
        return result
    }

    /// Listens on the group's socket; nil when a live shim already serves it. A stale socket left
    /// by a dead shim is replaced.
    func listen(on socket: ShimSocket) throws -> Int32? {
        do {
            return try socket.listen()
        } catch SocketError.listen(_, let code) where code == EADDRINUSE {
            if socket.canConnect() { return nil }
            socket.remove()
            return try socket.listen()
        }
    }

    /// The warm pool for this pod, if the configuration has one.
    func warmPlan(spec: OCISpec, options: [UInt8]) -> WarmPoolPlan? {
        guard let warmPool else { return nil }
        return warmPool(spec, Self.configPath(fromOptions: options), currentEnvironmentByName(), flags.address)
    }

    /// Spawns the daemon with the listener as its fd 3 and records the address in the bundle.
    func spawnDaemon(listener: Int32, socket: ShimSocket) throws -> pid_t {
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
        return pid
    }

    /// Offers the pod to the pool's warm shims; the result when one took it (the pool topped up).
    func claimWarm(_ plan: WarmPoolPlan, listener: Int32, socket: ShimSocket) throws -> StartResult? {
        if let reason = plan.ineligible {
            log("pod \(flags.id) boots its own VM, not a warm one: \(reason)")
            return nil
        }
        let claim = WarmClaim(
            id: flags.id, namespace: flags.namespace, address: flags.address, publishBinary: flags.publishBinary,
            bundle: bundle.path, debug: flags.debug, ttrpcAddress: currentEnvironmentByName()["TTRPC_ADDRESS"] ?? "")
        let log = self.log
        guard let taken = plan.pool.claim(claim, listener: listener, log: { message in log(message) }) else { return nil }
        try bundle.writeAddress(socket.address)
        var result = StartResult(address: socket.address, daemonPID: nil, warmSandbox: taken)
        result.spawnedWarm = refill(plan)
        return result
    }

    /// Tops the pool up: warm shims, each with containerd's pidfd (fd 3, so it ends with
    /// containerd: `start`'s parent) and its locked pool entry (fd 4). Failures are logged; the pod
    /// runs either way.
    func refill(_ plan: WarmPoolPlan) -> [String] {
        let containerd = ks_pidfd_open(getppid())
        guard containerd >= 0 else {
            log("warm pool: cannot watch containerd (pid \(getppid())): \(Errno(-containerd))")
            return []
        }
        defer { close(containerd) }
        let executable = executable
        let environment = currentEnvironment()
        let common = warmArguments(plan)
        do {
            return try plan.pool.refill { id, lock in
                _ = try spawnProcess(
                    path: executable, arguments: ["-id", id] + common, environment: environment,
                    fds: [nil, nil, nil, containerd, lock], newProcessGroup: true)
            }
        } catch {
            log("warm pool \(plan.pool.directory): cannot refill: \(error)")
            return []
        }
    }

    /// A warm shim's command line, but its `-id`.
    func warmArguments(_ plan: WarmPoolPlan) -> [String] {
        var arguments = ["-namespace", flags.namespace, "-address", flags.address, "-pool", plan.pool.directory]
        if !flags.publishBinary.isEmpty { arguments += ["-publish-binary", flags.publishBinary] }
        if let config = plan.configPath { arguments += ["-config", config] }
        if flags.debug { arguments.append("-debug") }
        return arguments + ["warm"]
    }

    /// containerd's runtime options: the bytes on `start`'s stdin (at most 1 MiB).
    static func readOptions(_ fd: Int32) throws(StartError) -> [UInt8] {
        do {
            return try readToEnd(fd, limit: 1 << 20)
        } catch {
            throw .readOptions(errno: error.rawValue)
        }
    }

    /// The configuration path in containerd's runtime options (`runtimeoptions.v1.Options`, in the
    /// Any that containerd writes to `start`'s stdin), if any.
    static func configPath(fromOptions bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty, let any = try? Google_Protobuf_Any(serializedBytes: bytes),
              any.typeURL.hasSuffix("runtimeoptions.v1.Options"),
              let options = try? Runtimeoptions_V1_Options(serializedBytes: any.value), !options.configPath.isEmpty
        else { return nil }
        return options.configPath
    }
}
