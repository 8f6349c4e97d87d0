// Process setup of the daemon (the re-exec'd child of `start`): logs go to the bundle's `log` FIFO,
// which containerd copies to its own stderr; SIGPIPE is ignored; SIGTERM and SIGINT end the shim.

import Dispatch
import Logging
#if canImport(Glibc)
import Glibc
#endif

enum DaemonSetup {
    /// Points fd 2 at `<bundle>/log`. containerd holds the FIFO open (O_RDWR) before it starts the
    /// shim, so a non-blocking O_WRONLY open succeeds at once; without a reader, logs stay on /dev/null.
    static func redirectStderr(toLogOf bundle: BundleDirectory) -> Bool {
        let fd = open(bundle.logPath, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return false }
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        let ok = dup2(fd, 2) == 2
        close(fd)
        return ok
    }

    /// Ignores SIGPIPE and calls `onTerminate` (once) on SIGTERM or SIGINT. Keep the sources alive.
    static func installSignalHandlers(onTerminate: @escaping @Sendable (Int32) -> Void) -> [any DispatchSourceSignal] {
        signal(SIGPIPE, SIG_IGN)
        return [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { onTerminate(number) }
            source.resume()
            return source
        }
    }

    /// swift-log to stderr (the log FIFO), debug level with `-debug`.
    static func bootstrapLogging(debug: Bool, id: String) -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = debug ? .debug : .info
            return handler
        }
        var logger = Logger(label: "containerd-shim-kata-v2")
        logger[metadataKey: "id"] = "\(id)"
        return logger
    }
}
