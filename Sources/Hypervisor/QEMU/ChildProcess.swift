import CHost
import CSupport
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A spawned VMM process in its own process group, with its stdout/stderr captured.
///
/// The VMM runs under a guard (ks_hv_spawn_guarded): it inherits none of our descriptors but its
/// output pipe, and it dies with the reaper thread even after it has changed its own user (QEMU's
/// -runas). A reaper thread blocks in waitpid on the guard, which exits with the VMM's status,
/// and records the exit; a reader thread drains the output pipe into `output` and a bounded tail.
/// `signal` signals the VMM's whole group, so anything the VMM started goes too. Nothing is left
/// behind: the reaper always reaps.
final class ChildProcess: Sendable {
    /// The VMM's pid (and process group).
    let pid: pid_t
    /// The guard's pid: our child, the one waited for.
    let guardPID: pid_t
    private let exit = ExitState()
    private final class Tail: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }
    private let tail = Tail()
    private let reaper: Mutex<WorkerThread?> = Mutex(nil)
    private let reader: Mutex<WorkerThread?> = Mutex(nil)
    static let tailLimit = 64 * 1024

    init(arguments: [String], output: (@Sendable ([UInt8]) -> Void)?) throws(HypervisorError) {
        guard let path = arguments.first else { throw .invalidConfig("empty command") }
        var pipeFDs: [Int32] = [-1, -1]
        let pipeResult = ks_pipe_cloexec(&pipeFDs)
        guard pipeResult == 0 else { throw .process(operation: "pipe", Errno(rawValue: -pipeResult)) }
        let readEnd = FileDescriptor(owning: pipeFDs[0])
        let writeEnd = WriteEnd(FileDescriptor(owning: pipeFDs[1]))
        let outputDone = OutputDone()
        // The reaper thread spawns the guard (PR_SET_PDEATHSIG ties it to a thread that lives
        // until the guard is reaped: if this process dies, the guard kills QEMU) and waits for it.
        let spawned = Mutex<Result<(guard: pid_t, vmm: pid_t), Errno>?>(nil)
        let exit = self.exit
        let reaperThread: WorkerThread
        do {
            reaperThread = try WorkerThread(name: "vmm-reaper") {
                var guardPID: pid_t = 0
                var vmm: pid_t = 0
                let rc = withCStrings(arguments) { argv in
                    withCStrings(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]) { envp in
                        ks_hv_spawn_guarded(path, argv, envp, writeEnd.rawValue, &guardPID, &vmm)
                    }
                }
                // Only the guard and the VMM hold the write end now: the reader sees EOF when both end.
                writeEnd.close()
                spawned.withLock { $0 = rc == 0 ? .success((guardPID, vmm)) : .failure(Errno(rawValue: -rc)) }
                guard rc == 0 else { return }
                Self.reap(guard: guardPID, vmm: vmm, exit: exit, outputDone: outputDone)
            }
        } catch {
            throw .process(operation: "reaper thread", error)
        }
        var outcome: Result<(guard: pid_t, vmm: pid_t), Errno>?
        while outcome == nil {
            outcome = spawned.withLock { $0 }
            if outcome == nil { usleep(1000) }
        }
        switch outcome {
        case .success(let pids)?:
            pid = pids.vmm
            guardPID = pids.guard
        case .failure(let error)?:
            reaperThread.join()
            throw .process(operation: "spawn \(path)", error)
        case nil: throw .process(operation: "spawn \(path)", .invalidArgument)
        }
        reaper.withLock { $0 = reaperThread }
        let child = pid
        do {
            let tail = self.tail
            let readerThread = try WorkerThread(name: "vmm-output") {
                while let bytes = try? readEnd.read(upTo: 16384), !bytes.isEmpty {
                    output?(bytes)
                    tail.bytes.withLock { t in
                        t += bytes
                        if t.count > Self.tailLimit { t.removeFirst(t.count - Self.tailLimit) }
                    }
                }
                outputDone.flag.store(true, ordering: .releasing)
            }
            reader.withLock { $0 = readerThread }
        } catch {
            _ = ks_hv_kill_group(child, SIGKILL)
            reaperThread.join()
            throw .process(operation: "output thread", error)
        }
    }

    private final class ExitState: Sendable {
        let state = Mutex<(code: Int32?, waiters: [@Sendable (Int32) -> Void])>((nil, []))
    }

    /// The pipe's write end, owned here until the child has it (then closed).
    private final class WriteEnd: @unchecked Sendable {
        // SAFETY: written once by the reaper thread (close), read before that by the same thread.
        private var fd: FileDescriptor?
        init(_ fd: FileDescriptor) { self.fd = fd }
        var rawValue: Int32 { fd?.rawValue ?? -1 }
        func close() { fd = nil }
    }

    private final class OutputDone: Sendable {
        let flag = Atomic<Bool>(false)
    }

    private static func reap(guard guardPID: pid_t, vmm: pid_t, exit: ExitState, outputDone: OutputDone) {
        var code: Int32 = 0
        let rc = ks_hv_wait(guardPID, 0, &code)
        let status = rc < 0 ? Int32(-1) : code
        // The group may hold helpers of the VMM; they go with it.
        _ = ks_hv_kill_group(vmm, SIGKILL)
        // Let the reader drain the last console bytes before anyone hears of the exit.
        for _ in 0..<200 where !outputDone.flag.load(ordering: .acquiring) { usleep(10_000) }
        let waiters = exit.state.withLock { e -> [@Sendable (Int32) -> Void] in
            e.code = status
            defer { e.waiters = [] }
            return e.waiters
        }
        waiters.forEach { $0(status) }
    }

    /// The exit status once the process has ended and been reaped.
    var exitCode: Int32? { exit.state.withLock { $0.code } }

    /// Calls `body` with the exit status once the process has ended (at once if it has).
    func onExit(_ body: @escaping @Sendable (Int32) -> Void) {
        let code = exit.state.withLock { e -> Int32? in
            if e.code == nil { e.waiters.append(body) }
            return e.code
        }
        if let code { body(code) }
    }

    func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in onExit { continuation.resume(returning: $0) } }
    }

    /// Signals the process group (no-op once reaped).
    func signal(_ signo: Int32) {
        guard exitCode == nil else { return }
        _ = ks_hv_kill_group(pid, signo)
    }

    /// SIGTERM, then SIGKILL after `graceSeconds` (at once when it is 0); returns the exit status.
    func terminate(graceSeconds: Double) async -> Int32 {
        if graceSeconds <= 0 {
            signal(SIGKILL)
            return await waitForExit()
        }
        signal(SIGTERM)
        signal(SIGCONT)  // a paused (stopped) VMM must run to act on SIGTERM
        let killer = Task { [self] in
            try await Task.sleep(for: .milliseconds(Int(graceSeconds * 1000)))
            signal(SIGKILL)
        }
        let code = await waitForExit()
        killer.cancel()
        return code
    }

    /// Joins the helper threads (after exit).
    func joinThreads() {
        reaper.withLock { $0 }?.join()
        reader.withLock { $0 }?.join()
    }

    var outputTail: String { String(decoding: tail.bytes.withLock { $0 }, as: UTF8.self) }
}
