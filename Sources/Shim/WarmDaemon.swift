// A warm shim (`containerd-shim-kata-v2 ... -pool DIR warm`, spawned by `start` to fill the pool,
// docs/warm-sandboxes.md): boots its sandbox to agent ready with no pod known, then waits on
// `<pool>/<id>.sock` for one claim. A claim names the pod and carries its listening task socket;
// the shim adopts the pod's id, moves its log to the pod's bundle, answers "ok" and from then on
// is that pod's daemon (Daemon.serve), as if `start` had spawned it.
//
// Unclaimed, it ends with containerd (the pidfd `start` hands it as fd 3), with its VM, or on
// SIGTERM, and removes its VM and its pool entries: no warm sandbox outlives the containerd it
// was started for. Its lock (fd 4, created locked by `start`) marks it alive until it exits.

import Dispatch
import Logging
import Synchronization
import SystemSupport
#if canImport(Glibc)
import CSupport
import Glibc
#endif

public enum WarmDaemon {
    /// containerd's pidfd (readable once containerd has exited).
    static let containerdFD: Int32 = 3
    /// The member's lock file, flock'ed.
    static let lockFD: Int32 = 4

    /// Boots, waits for a claim, serves the pod; returns the exit status.
    public static func run(flags: ShimFlags, makeSandbox: SandboxFactory) async -> Int32 {
        let (ended, endSignal) = AsyncStream<String>.makeStream()
        let signalSources = DaemonSetup.installSignalHandlers { number in endSignal.yield("signal \(number)") }
        let pool = WarmPool(directory: flags.pool, size: 0)
        let id = flags.id
        _ = fcntl(containerdFD, F_SETFD, FD_CLOEXEC)
        _ = fcntl(lockFD, F_SETFD, FD_CLOEXEC)
        let log = open(pool.logPath(id), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        if log >= 0 {
            _ = dup2(log, 2)
            close(log)
        }
        var logger = DaemonSetup.bootstrapLogging(debug: flags.debug, id: id)
        let environment = currentEnvironmentByName()
        do {
            try ShimConfinement.apply()
        } catch {
            logger.error("kata-swift: cannot confine the warm shim: \(error)")
            pool.leave(id)
            return 1
        }

        // containerd gone: end (the pidfd is readable once it has exited).
        let queue = DispatchQueue(label: "kata-swift.warm")
        let containerdWatch = DispatchSource.makeReadSource(fileDescriptor: containerdFD, queue: queue)
        containerdWatch.setEventHandler { endSignal.yield("containerd exited") }
        // A watched descriptor closes only once its source is cancelled, never before: dispatch
        // still has it registered until then, and a reused number would be someone else's.
        containerdWatch.setCancelHandler { close(containerdFD) }
        containerdWatch.resume()

        let sandbox = makeSandbox(SandboxContext(sandboxID: id, environment: environment, logger: logger))
        let started = ContinuousClock.now
        do {
            try await sandbox.warmUp(configPath: flags.config.isEmpty ? nil : flags.config) {
                endSignal.yield("the warm sandbox ended")
            }
        } catch {
            logger.error("kata-swift: warm sandbox \(id) did not boot: \(error)")
            containerdWatch.cancel()
            await sandbox.shutdown()
            pool.leave(id)
            return 1
        }
        let claimListener = ks_unix_listen(pool.socketPath(id), 8, 1, 1)
        guard claimListener >= 0 else {
            logger.error("kata-swift: warm sandbox \(id): listen on \(pool.socketPath(id)): \(Errno(-claimListener))")
            containerdWatch.cancel()
            await sandbox.shutdown()
            pool.leave(id)
            return 1
        }
        logger.info("kata-swift: warm sandbox \(id) ready in \(started.duration(to: .now)), waiting in \(pool.directory)")

        // One claim at a time, off the concurrency pool: the first valid one wins.
        let claimed = Mutex<(claim: WarmClaim, listener: Int32, connection: Int32)?>(nil)
        let claimWatch = DispatchSource.makeReadSource(fileDescriptor: claimListener, queue: queue)
        claimWatch.setEventHandler {
            guard claimed.withLock({ $0 == nil }) else { return }
            let connection = ks_unix_accept(claimListener, 0)
            guard connection >= 0 else { return }
            do {
                let (claim, listener) = try WarmPool.receiveClaim(from: connection)
                claimed.withLock { $0 = (claim, listener, connection) }
                endSignal.yield("claim")
            } catch {
                WarmPool.answer(connection, "\(error)")
                close(connection)
            }
        }
        claimWatch.setCancelHandler { close(claimListener) }
        claimWatch.resume()

        var reason = "end"
        for await why in ended {
            reason = why
            break
        }
        claimWatch.cancel()
        containerdWatch.cancel()
        unlink(pool.socketPath(id))
        guard reason == "claim", let (claim, listener, connection) = claimed.withLock({ $0 }) else {
            logger.info("kata-swift: warm sandbox \(id) ending unclaimed: \(reason)")
            await sandbox.shutdown()
            pool.leave(id)
            return 0
        }

        // Adopt the pod: its id for the sandbox (the VM's directory is renamed), its bundle's
        // log, its bundle as working directory; then answer, so `start` prints the address.
        do {
            try await sandbox.adopt(sandboxID: claim.id, bundle: claim.bundle)
        } catch {
            // Gone before the answer: the pod's own VM, booted next, must find none of ours (a
            // tap moved into its namespace ends with this VM).
            logger.error("kata-swift: warm sandbox \(id) cannot take pod \(claim.id): \(error)")
            close(listener)
            await sandbox.shutdown()
            pool.leave(id)
            WarmPool.answer(connection, "cannot take pod \(claim.id): \(error)")
            close(connection)
            return 1
        }
        let bundle = BundleDirectory(path: claim.bundle)
        _ = DaemonSetup.redirectStderr(toLogOf: bundle)
        _ = chdir(claim.bundle)
        pool.removeEntries(of: id)
        close(lockFD)
        logger[metadataKey: "id"] = "\(claim.id)"
        if claim.debug { logger.logLevel = .debug }
        logger.info("kata-swift: pod \(claim.namespace)/\(claim.id) claimed warm sandbox \(id)")
        WarmPool.answer(connection, "ok")
        close(connection)
        return await Daemon.serve(
            flags: claim.flags, listener: listener, sandbox: sandbox, ttrpcAddress: claim.ttrpcAddress, logger: logger,
            ended: ended, endSignal: endSignal, signalSources: signalSources)
    }
}
