// The daemon: the child `start` re-execs with no action. It serves containerd.task.v2.Task on the
// listening socket inherited as fd 3 until Shutdown finds no task left, or SIGTERM/SIGINT; then it
// lets the event queue drain, closes the server, removes its socket and exits.

import ContainerdAPI
import Dispatch
import Logging
import Synchronization
import TTRPC
#if canImport(Glibc)
import Glibc
#endif

/// What a sandbox factory gets to build the daemon's sandbox.
public struct SandboxContext: Sendable {
    /// The shim's id (`-id`): the pod's sandbox id, or the container's id for a pod of one.
    public var sandboxID: String
    /// The daemon's environment (KATA_CONF_FILE and the like).
    public var environment: [String: String]
    public var logger: Logger
}

/// Builds the daemon's sandbox. The executable supplies it (the Runtime module's VMSandbox; the
/// test-only scripted shim its ScriptedSandbox), so the Shim module does not depend on the runtime.
public typealias SandboxFactory = @Sendable (SandboxContext) -> any Sandbox

/// The shim daemon.
public enum Daemon {
    /// The inherited listener.
    static let listenerFD: Int32 = 3

    /// Serves until the shim is told to end; returns the exit status.
    public static func run(flags: ShimFlags, makeSandbox: SandboxFactory) async -> Int32 {
        // Signals first: a SIGTERM that arrives while the daemon is still starting must still end it
        // cleanly (socket removed), not kill it outright.
        let (ended, endSignal) = AsyncStream<String>.makeStream()
        let signalSources = DaemonSetup.installSignalHandlers { number in
            endSignal.yield("signal \(number)")
        }
        let bundle = BundleDirectory(path: flags.bundle.isEmpty ? currentDirectory() : flags.bundle)
        _ = DaemonSetup.redirectStderr(toLogOf: bundle)
        let logger = DaemonSetup.bootstrapLogging(debug: flags.debug, id: flags.id)
        let environment = currentEnvironmentByName()
        // Before any sandbox exists, so every thread, QEMU and every other child inherit it.
        do {
            try ShimConfinement.apply()
        } catch {
            logger.error("kata-swift: cannot confine the shim (seccomp filter, capabilities): \(error)")
            return 1
        }

        guard ShimSocket.boundPath(of: listenerFD) != nil else {
            logger.error("kata-swift: fd 3 is not a listening Unix socket; the daemon is started by `start`")
            return 1
        }
        let sandbox = makeSandbox(SandboxContext(sandboxID: flags.id, environment: environment, logger: logger))
        return await serve(
            flags: flags, listener: listenerFD, sandbox: sandbox, ttrpcAddress: environment["TTRPC_ADDRESS"],
            logger: logger, ended: ended, endSignal: endSignal, signalSources: signalSources)
    }

    /// Serves `sandbox` to containerd on `listener` until the shim is told to end (a reason on
    /// `ended`), then shuts down cleanly and returns the exit status. The daemon and a claimed
    /// warm shim (WarmDaemon) both end here.
    static func serve(
        flags: ShimFlags, listener: Int32, sandbox: any Sandbox, ttrpcAddress: String?, logger: Logger,
        ended: AsyncStream<String>, endSignal: AsyncStream<String>.Continuation, signalSources: [any DispatchSourceSignal]
    ) async -> Int32 {
        guard let socketPath = ShimSocket.boundPath(of: listener) else {
            logger.error("kata-swift: fd \(listener) is not a listening Unix socket")
            return 1
        }
        let socket = ShimSocket(path: socketPath)
        // The listener came through exec without FD_CLOEXEC; no child (QEMU, a logging binary)
        // may hold it: a dead shim's socket must stop answering, or `delete` takes it for alive.
        _ = fcntl(listener, F_SETFD, FD_CLOEXEC)
        let sink: any EventSink = ttrpcAddress.flatMap { $0.isEmpty ? nil : EventForwarder(address: $0) } ?? DroppingEventSink()
        let events = EventQueue(sink: sink, namespace: flags.namespace, logger: logger)
        let service = TaskService(sandbox: sandbox, events: events, namespace: flags.namespace, logger: logger) {
            endSignal.yield("shutdown: no task left")
        }

        let server = TTRPCServer()
        server.register(TaskRPCService(service: service))
        do {
            try await server.listen(listeningDescriptor: listener)
        } catch {
            logger.error("kata-swift: cannot serve on \(socketPath): \(error)")
            socket.remove()
            return 1
        }
        logger.info("kata-swift shim serving \(socket.address) for \(flags.namespace)/\(flags.id), pid \(getpid())")

        var reason = "end"
        for await why in ended {
            reason = why
            break
        }
        logger.info("kata-swift shim ending: \(reason)")
        if reason.hasPrefix("signal") { await service.terminateAll() }
        // Let the Shutdown reply (and other calls in flight) go out, then close everything.
        await server.shutdown(gracePeriod: .milliseconds(500))
        await events.drain(timeout: .seconds(5))
        socket.remove()
        // A signal ends the shim now; otherwise what the sandbox left running may finish.
        if !reason.hasPrefix("signal") { await BackgroundWork.finish(within: .seconds(120), logger: logger) }
        _ = signalSources
        return 0
    }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard let pointer = buffer.withUnsafeMutableBufferPointer({ getcwd($0.baseAddress, $0.count) }) else { return "." }
        return String(cString: pointer)
    }
}
