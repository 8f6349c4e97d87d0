// TEST BACKEND, not a runtime: a sandbox whose "processes" are tiny scripts run in-process, chosen
// by the process's args. It lets the real daemon be driven end to end (sockets, FIFOs, events,
// state machines) where no VM can run. It lives only in the test executable
// containerd-shim-kata-scripted-v2 (runtime io.containerd.kata-scripted.v2), never in the shipped
// shim, which has no way to run a container without a VM (docs/shim.md, docs/security.md).
//
// Scripts (args[0]):
//   echo WORDS...      writes "WORDS\n" to stdout, exits 0
//   echo-err WORDS...  writes "WORDS\n" to stderr (stdout with a terminal), exits 0
//   cat                copies stdin to stdout until EOF, exits 0
//   exit N             exits with N
//   fail-create        (init only) creation fails
//   anything else      runs until signalled; exits 128+signal
// A signal ends any running script with 128+signal; the init's exit kills the container's execs.

import OCI
import Shim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An error the scripted backend raises on purpose or for a bad request.
struct ScriptedSandboxError: Error, CustomStringConvertible, Equatable {
    public var description: String
}

/// The scripted test backend.
actor ScriptedSandbox: Sandbox {
    private final class Script {
        let args: [String]
        let stdio: ProcessStdio
        var pid: UInt32 = 0
        var started = false
        var killedBy: UInt32?
        var exitCode: UInt32?
        var signalWaiter: CheckedContinuation<Void, Never>?
        var exitWaiters: [CheckedContinuation<UInt32, Never>] = []

        init(args: [String], stdio: ProcessStdio) {
            self.args = args
            self.stdio = stdio
        }
    }

    private struct Key: Hashable {
        var containerID: String
        var execID: String?
    }

    private var scripts: [Key: Script] = [:]
    private var paused: Set<String> = []
    private var nextPID: UInt32 = 1000
    /// Every call, in order, for tests to inspect.
    public private(set) var calls: [String] = []
    public private(set) var isShutDown = false

    public init() {}

    private func script(_ containerID: String, _ execID: String?) throws -> Script {
        guard let script = scripts[Key(containerID: containerID, execID: execID)] else {
            throw ScriptedSandboxError(description: "scripted sandbox: no process \(execID ?? containerID) in \(containerID)")
        }
        return script
    }

    private func allocatePID() -> UInt32 {
        nextPID += 1
        return nextPID
    }

    public func createContainer(_ config: ContainerConfig) async throws -> UInt32 {
        calls.append("create \(config.id)")
        let args = config.spec.process?.args ?? []
        if args.first == "fail-create" {
            throw ScriptedSandboxError(description: "scripted sandbox: creation of \(config.id) refused by its script")
        }
        let script = Script(args: args, stdio: config.stdio)
        script.pid = allocatePID()
        scripts[Key(containerID: config.id, execID: nil)] = script
        return script.pid
    }

    public func addProcess(containerID: String, execID: String, spec: OCIProcess, stdio: ProcessStdio) async throws {
        calls.append("exec \(containerID) \(execID)")
        _ = try script(containerID, nil)
        scripts[Key(containerID: containerID, execID: execID)] = Script(args: spec.args ?? [], stdio: stdio)
    }

    public func startProcess(containerID: String, execID: String?) async throws -> UInt32 {
        calls.append("start \(containerID) \(execID ?? "")")
        let script = try script(containerID, execID)
        guard !script.started, script.exitCode == nil else {
            throw ScriptedSandboxError(description: "scripted sandbox: \(execID ?? containerID) cannot start twice")
        }
        script.started = true
        if script.pid == 0 { script.pid = allocatePID() }
        Task { await self.run(script, containerID: containerID, isInit: execID == nil) }
        return script.pid
    }

    private func run(_ script: Script, containerID: String, isInit: Bool) async {
        var code: UInt32 = 0
        let stdout = script.stdio.stdout
        let stderr = script.stdio.stderr ?? stdout
        do {
            switch script.args.first {
            case "echo":
                try await stdout?.write(Array((script.args.dropFirst().joined(separator: " ") + "\n").utf8))
            case "echo-err":
                try await stderr?.write(Array((script.args.dropFirst().joined(separator: " ") + "\n").utf8))
            case "cat":
                if let stdin = script.stdio.stdin {
                    while script.killedBy == nil {
                        let chunk = try await stdin.read(maxBytes: 65536)
                        if chunk.isEmpty { break }
                        try await stdout?.write(chunk)
                    }
                }
            case "exit":
                code = UInt32(script.args.dropFirst().first.flatMap { UInt32($0) } ?? 0)
            default:
                if script.killedBy == nil {
                    await withCheckedContinuation { script.signalWaiter = $0 }
                }
            }
        } catch {
            code = 1
        }
        await finish(script, code: code, containerID: containerID, isInit: isInit)
    }

    private func finish(_ script: Script, code: UInt32, containerID: String, isInit: Bool) async {
        guard script.exitCode == nil else { return }
        // Output is written and closed before the exit is reported (the Sandbox contract).
        await script.stdio.stdout?.close()
        await script.stdio.stderr?.close()
        let final = script.killedBy.map { 128 + $0 } ?? code
        script.exitCode = final
        for waiter in script.exitWaiters { waiter.resume(returning: final) }
        script.exitWaiters = []
        if isInit {
            for (key, exec) in scripts where key.containerID == containerID && key.execID != nil && exec.exitCode == nil {
                await deliver(UInt32(SIGKILL), to: exec, containerID: containerID, isInit: false)
            }
        }
    }

    private func deliver(_ signal: UInt32, to script: Script, containerID: String, isInit: Bool) async {
        guard script.exitCode == nil, script.killedBy == nil else { return }
        script.killedBy = signal
        await script.stdio.stdin?.close()
        if let waiter = script.signalWaiter {
            script.signalWaiter = nil
            waiter.resume()
        } else if !script.started {
            await finish(script, code: 0, containerID: containerID, isInit: isInit)
        }
    }

    public func signalProcess(containerID: String, execID: String?, signal: UInt32, all: Bool) async throws {
        calls.append("signal \(containerID) \(execID ?? "") \(signal)\(all ? " all" : "")")
        let script = try script(containerID, execID)
        if all {
            for (key, other) in scripts where key.containerID == containerID && key.execID != nil {
                await deliver(signal, to: other, containerID: containerID, isInit: false)
            }
        }
        await deliver(signal, to: script, containerID: containerID, isInit: execID == nil)
    }

    public func waitProcess(containerID: String, execID: String?) async throws -> UInt32 {
        let script = try script(containerID, execID)
        if let code = script.exitCode { return code }
        return await withCheckedContinuation { script.exitWaiters.append($0) }
    }

    public func resizePty(containerID: String, execID: String?, width: UInt32, height: UInt32) async throws {
        calls.append("resize \(containerID) \(execID ?? "") \(width)x\(height)")
        _ = try script(containerID, execID)
    }

    public func closeStdin(containerID: String, execID: String?) async throws {
        calls.append("close-stdin \(containerID) \(execID ?? "")")
        try await script(containerID, execID).stdio.stdin?.finish()
    }

    public func pids(containerID: String) async throws -> [UInt32] {
        _ = try script(containerID, nil)
        return scripts.filter { $0.key.containerID == containerID && $0.value.started && $0.value.exitCode == nil }
            .map(\.value.pid).sorted()
    }

    public func stats(containerID: String) async throws -> EncodedMetrics {
        _ = try script(containerID, nil)
        // An empty io.containerd.cgroups.v1.Metrics message.
        return EncodedMetrics(typeURL: "io.containerd.cgroups.v1.Metrics", value: [])
    }

    public func pause(containerID: String) async throws {
        calls.append("pause \(containerID)")
        _ = try script(containerID, nil)
        paused.insert(containerID)
    }

    public func resume(containerID: String) async throws {
        calls.append("resume \(containerID)")
        _ = try script(containerID, nil)
        paused.remove(containerID)
    }

    public func update(containerID: String, resources: [UInt8], annotations: [String: String]) async throws {
        calls.append("update \(containerID) \(resources.count) bytes")
        _ = try script(containerID, nil)
    }

    public func removeProcess(containerID: String, execID: String) async throws {
        calls.append("remove \(containerID) \(execID)")
        let script = try script(containerID, execID)
        if script.exitCode == nil { await deliver(UInt32(SIGKILL), to: script, containerID: containerID, isInit: false) }
        scripts[Key(containerID: containerID, execID: execID)] = nil
    }

    public func removeContainer(containerID: String) async throws {
        calls.append("remove \(containerID)")
        let script = try script(containerID, nil)
        if script.exitCode == nil { await deliver(UInt32(SIGKILL), to: script, containerID: containerID, isInit: true) }
        scripts = scripts.filter { $0.key.containerID != containerID }
    }

    public func shutdown() async {
        calls.append("shutdown")
        isShutDown = true
    }
}
