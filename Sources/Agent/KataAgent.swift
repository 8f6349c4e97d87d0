// kata-agent's main sequence:
//   1. block the signals the main thread will wait for (before any other thread exists);
//   2. read the configuration (flags, environment, kernel command line);
//   3. as PID 1: mount /proc, /sys, /dev, ... and attach stdio to the console;
//      otherwise: become a child subreaper and touch nothing else;
//   4. start the ttrpc server on every listen address (event-loop threads);
//   5. the main thread reaps children until SIGTERM/SIGINT, then stops the server and
//      powers off (PID 1) or exits.
// Any failure on the way is printed on the console and ends the guest.

import Dispatch
import GuestContainers
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

public enum KataAgent {
    /// Runs the agent; never returns.
    public static func main(arguments: [String]) -> Never {
        let startedNanos = BootClock.nanoseconds()
        var steps = StepTimes()  // the agent's own start, for its debug log
        let role = AgentRole.current
        let log = AgentLog()

        do {
            try SignalLoop.blockSignals()
        } catch {
            GuestInit.fatal("\(error)", role: role, log: log)
        }

        let config = configure(arguments: arguments, role: role, log: log)
        log.level = config.logLevel
        log.info("kata-agent \(AgentVersion.agent) (API \(AgentVersion.api)) starting as \(role)")
        steps.mark("configuration")

        if role == .initProcess {
            do {
                try GuestInit.setUp(log: log)
            } catch {
                GuestInit.fatal("\(error)", role: role, log: log)
            }
        } else {
            GuestInit.becomeSubreaper(log: log)
        }
        steps.mark("mounts and loopback")

        // Before the ttrpc server: once the shim reaches the agent, the console is there too.
        let debugConsole = startDebugConsole(config, log: log)
        steps.mark("debug console")
        let portForward = role == .initProcess ? PortForwardService.start(log: log) : nil
        steps.mark("port forwarding")
        let server = AgentServer(
            startedNanos: startedNanos, log: log, engine: role == .initProcess ? .guest : .host)
        steps.mark("server")
        let listenError = blockOn { () async -> AgentServerError? in
            do throws(AgentServerError) {
                try await server.listen(on: config.listen)
                return nil
            } catch {
                return error
            }
        }
        if let listenError { GuestInit.fatal("\(listenError)", role: role, log: log) }
        steps.mark("listen")
        // The shim reads this line from the console for its start path (Runtime's StartPath); an
        // init exec time of 0 means the kernel log did not say (not PID 1, or the record is gone).
        let listeningNanos = BootClock.nanoseconds()
        let initExec = role == .initProcess ? BootClock.initExecMilliseconds() ?? 0 : 0
        log.info("ready after \((listeningNanos - startedNanos) / 1_000_000) ms (boot clock: init exec \(initExec) ms, main \(startedNanos / 1_000_000) ms, listening \(listeningNanos / 1_000_000) ms)")
        log.debug("startup steps: \(steps)")
        SpecPrewarm.start(log: log)

        let reaper = Reaper(log: log)
        _ = SignalLoop.run(reaper: reaper, log: log)
        blockOn { await server.stop() }
        debugConsole?.stop()
        portForward?.stop()
        log.info("stopped")
        GuestInit.shutdown(role: role, exitCode: 0, log: log)
    }

    /// Flags, environment and (for PID 1) the kernel command line. Bad configuration is fatal:
    /// a guest that cannot be reached is no use.
    static func configure(arguments: [String], role: AgentRole, log: AgentLog) -> AgentConfig {
        var environment: [String: String] = [:]
        for key in ["KATA_AGENT_LISTEN", "KATA_AGENT_LOG_LEVEL"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        let kernelCommandLine = role == .initProcess ? (try? readWholeTextFile("/proc/cmdline", limit: 1 << 20)) ?? "" : ""
        let config: AgentConfig
        do {
            config = try AgentConfig.resolve(
                arguments: Array(arguments.dropFirst()), environment: environment,
                kernelCommandLine: kernelCommandLine)
        } catch {
            if role == .hostProcess {
                log.error("\(error)")
                print(AgentConfig.usage)
                exit(2)
            }
            GuestInit.fatal("configuration: \(error)", role: role, log: log)
        }
        switch config.action {
        case .run:
            return config
        case .printVersion:
            print("kata-agent \(AgentVersion.agent) (API \(AgentVersion.api))")
        case .printHelp:
            print(AgentConfig.usage)
        }
        GuestInit.shutdown(role: role, exitCode: 0, log: log)
    }

    /// Runs `body` on the concurrency pool and blocks this (non-pool) thread until it finishes.
    /// Only for the main thread, which owns no event loop and no task.
    static func blockOn<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let box = ResultBox<T>()
        Task {
            box.value = await body()
            box.done.signal()
        }
        box.done.wait()
        guard let value = box.value else { preconditionFailure("blockOn: finished without a value") }
        return value
    }
}

/// A value handed from a task to a waiting thread. The semaphore orders the write before the read.
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
    let done = DispatchSemaphore(value: 0)
}

