// The interface the task service drives: one sandbox (one pod, one VM) holding containers and
// their processes. The VM-backed implementation is the Runtime module's VMSandbox, which the
// shipped shim's executable hands to `ShimMain.run`; the test-only ScriptedSandbox lives in its
// own executable, containerd-shim-kata-scripted-v2, never in the shipped shim.
//
// Process identity: `containerID` plus `execID`, where `execID == nil` is the container's init.
// Stdio: the service opens containerd's endpoints (FIFOs, files, logging binaries) and hands the
// sandbox plain streams; the sandbox writes the process's output into them and closes them at EOF.

import OCI
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where the sandbox delivers a process's output. Writes may block on a slow reader; they suspend
/// the caller, never a thread of the cooperative pool.
public protocol StdioWriter: Sendable {
    func write(_ bytes: [UInt8]) async throws
    /// End of stream: no more writes follow.
    func close() async
}

/// Where the sandbox reads a process's input from.
public protocol StdioReader: Sendable {
    /// Up to `maxBytes` bytes; an empty array is end of stream.
    func read(maxBytes: Int) async throws -> [UInt8]
    /// Ends the input once what is already buffered has been read (CloseIO): reads return the data
    /// still in the pipe, then end of stream, instead of waiting for more.
    func finish() async
    /// Stops a pending read at once; later reads return end of stream.
    func close() async
}

/// The host-side streams of one process. With `terminal`, stdout carries the pty and stderr is nil.
public struct ProcessStdio: Sendable {
    public var stdin: (any StdioReader)?
    public var stdout: (any StdioWriter)?
    public var stderr: (any StdioWriter)?
    public var terminal: Bool

    public init(
        stdin: (any StdioReader)? = nil, stdout: (any StdioWriter)? = nil, stderr: (any StdioWriter)? = nil,
        terminal: Bool = false
    ) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.terminal = terminal
    }

    /// Closes every stream (the host ends of the process's stdio).
    public func closeAll() async {
        await stdin?.close()
        await stdout?.close()
        await stderr?.close()
    }
}

/// Everything a sandbox needs to create a container.
public struct ContainerConfig: Sendable {
    public var id: String
    public var bundle: String
    /// The container's root filesystem on the host (`<bundle>/rootfs` with containerd's mounts on it).
    public var rootfs: String
    /// The OCI runtime spec, as read from `<bundle>/config.json`.
    public var spec: OCISpec
    public var stdio: ProcessStdio
    /// Runtime options from containerd (`runtimeoptions.v1.Options.config_path`), if any.
    public var configPath: String?

    public init(id: String, bundle: String, rootfs: String, spec: OCISpec, stdio: ProcessStdio, configPath: String? = nil) {
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.spec = spec
        self.stdio = stdio
        self.configPath = configPath
    }
}

/// Resource usage of a container, already encoded the way containerd's Stats wants it
/// (`io.containerd.cgroups.v1.Metrics` or `...v2.Metrics` in an Any).
public struct EncodedMetrics: Equatable, Sendable {
    public var typeURL: String
    public var value: [UInt8]

    public init(typeURL: String, value: [UInt8]) {
        self.typeURL = typeURL
        self.value = value
    }
}

/// One pod's containers and processes.
public protocol Sandbox: Sendable {
    /// Creates a container (not yet running); returns the pid of its init process.
    func createContainer(_ config: ContainerConfig) async throws -> UInt32
    /// Adds an exec process to a container (not yet running).
    func addProcess(containerID: String, execID: String, spec: OCIProcess, stdio: ProcessStdio) async throws
    /// Starts the container's init (`execID == nil`) or an exec process; returns its pid.
    func startProcess(containerID: String, execID: String?) async throws -> UInt32
    /// Sends a signal; with `all`, to every process of the container.
    func signalProcess(containerID: String, execID: String?, signal: UInt32, all: Bool) async throws
    /// Returns when the process has exited and its output has been written and closed.
    func waitProcess(containerID: String, execID: String?) async throws -> UInt32
    func resizePty(containerID: String, execID: String?, width: UInt32, height: UInt32) async throws
    /// Closes the process's stdin once what was read so far has been delivered.
    func closeStdin(containerID: String, execID: String?) async throws
    func pids(containerID: String) async throws -> [UInt32]
    func stats(containerID: String) async throws -> EncodedMetrics
    func pause(containerID: String) async throws
    func resume(containerID: String) async throws
    /// `resources` is an OCI `LinuxResources` in JSON, as containerd sends it.
    func update(containerID: String, resources: [UInt8], annotations: [String: String]) async throws
    /// Forgets a stopped exec process.
    func removeProcess(containerID: String, execID: String) async throws
    /// Removes a container whose processes have all stopped.
    func removeContainer(containerID: String) async throws
    /// Stops the sandbox (the VM) after its last container is gone.
    func shutdown() async
    /// Waits for the next container of the sandbox to have a process killed for running out of
    /// memory, and returns its id. Throws `CancellationError` when the caller is cancelled and
    /// `TaskError` (`.unavailable`, `.failedPrecondition`) once the sandbox can report no more.
    func nextOOMEvent() async throws -> String
    /// Boots ahead of demand, before any pod is known (a warm sandbox, docs/warm-sandboxes.md),
    /// with the configuration at `configPath` (nil: the default search). `onEnd` is called if the
    /// sandbox ends on its own before a pod adopts it.
    func warmUp(configPath: String?, onEnd: @escaping @Sendable () -> Void) async throws
    /// The warm sandbox becomes pod `sandboxID`'s (its spec is in `bundle`); its first container
    /// then finds it booted. Throws, leaving the pod's resources untouched, when it cannot.
    func adopt(sandboxID: String, bundle: String) async throws
}

extension Sandbox {
    /// A sandbox that cannot boot ahead of demand says so; `start` then spawns a daemon instead.
    public func warmUp(configPath: String?, onEnd: @escaping @Sendable () -> Void) async throws {
        throw TaskError.unimplemented("this sandbox cannot be warmed")
    }

    public func adopt(sandboxID: String, bundle: String) async throws {
        throw TaskError.unimplemented("this sandbox cannot be warmed")
    }

    /// A sandbox that cannot see OOM kills reports none: this waits until cancelled.
    public func nextOOMEvent() async throws -> String {
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}
