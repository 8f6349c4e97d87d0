// The debug console, off unless configured (kernel agent.debug_console, or --debug-console):
// every connection to its port gets a shell on a new pty (busybox /bin/sh in the guest), in the
// guest's own namespaces, as Kata's agent offers on vsock port 1026. The host reaches it with
// `kata-ctl exec <sandbox>` through the hybrid vsock socket.
//
// Threads: one listener thread blocked in poll(2), and one thread per session (see
// DebugConsoleSession); none of them touches the concurrency pool or the ttrpc event loops.

import CShims
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why the debug console could not start.
public enum DebugConsoleError: Error, Equatable, CustomStringConvertible {
    case listen(ListenAddress, errno: Int32)
    case stopPipe(errno: Int32)
    case thread(errno: Int32)

    public var description: String {
        switch self {
        case .listen(let address, let errno): "debug console: listen on \(address): \(errnoText(errno))"
        case .stopPipe(let errno): "debug console: pipe: \(errnoText(errno))"
        case .thread(let errno): "debug console: pthread_create: \(errnoText(errno))"
        }
    }
}

public final class DebugConsole: Sendable {
    /// The program each session runs.
    public struct Shell: Sendable, Equatable {
        public var path: String
        public var arguments: [String]
        public var environment: [String]
        /// The pty's initial window; `stty rows R cols C` in the shell changes it.
        public var rows: UInt16 = 24
        public var columns: UInt16 = 80

        public init(path: String, arguments: [String], environment: [String]) {
            self.path = path
            self.arguments = arguments
            self.environment = environment
        }

        /// busybox's shell in the agent's initramfs.
        public static let guestDefault = Shell(
            path: "/bin/sh", arguments: ["sh"],
            environment: [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=vt100", "HOME=/",
                "PS1=kata-debug# ",
            ])
    }

    let address: ListenAddress
    private let listener: Int32
    private let stopRead: Int32
    private let stopWrite: Int32
    private let shell: Shell
    private let log: AgentLog
    /// The listener thread and every session thread are in the group until they end.
    private let threads = DispatchGroup()
    private let stopped = Mutex(false)
    private let nextSession = Atomic<Int>(1)

    /// Opens the listener and starts accepting. A Unix socket file at the address is replaced.
    public init(on address: ListenAddress, shell: Shell = .guestDefault, log: AgentLog) throws(DebugConsoleError) {
        self.address = address
        self.shell = shell
        self.log = log
        let fd: Int32
        switch address {
        case .vsock(let cid, let port):
            fd = ks_vsock_listen(cid ?? ks_vmaddr_cid_any, port, 16)
        case .unix(let path):
            unlink(path)
            fd = ks_hv_unix_listen(path, 16, 0)
        }
        guard fd >= 0 else { throw .listen(address, errno: -fd) }
        var pipeFDs: [Int32] = [-1, -1]
        let rc = ks_hv_pipe(&pipeFDs)
        guard rc == 0 else {
            close(fd)
            throw .stopPipe(errno: -rc)
        }
        listener = fd
        stopRead = pipeFDs[0]
        stopWrite = pipeFDs[1]
        threads.enter()
        let started = spawnThread(name: "debug-console") { [self] in
            acceptLoop()
            threads.leave()
        }
        if started != 0 {
            threads.leave()
            close(listener)
            close(stopRead)
            close(stopWrite)
            if case .unix(let path) = address { unlink(path) }
            throw .thread(errno: started)
        }
        log.info("debug console listening on \(address)")
    }

    /// Stops accepting, hangs up every session (their shells get SIGHUP, then SIGKILL if they
    /// linger) and waits until every shell is reaped and every descriptor closed. Idempotent.
    public func stop() {
        let first = stopped.withLock { s -> Bool in
            defer { s = true }
            return !s
        }
        guard first else { return }
        var byte: UInt8 = 1
        _ = write(stopWrite, &byte, 1)  // never read: the pipe stays readable for every poller
        threads.wait()
        close(listener)
        close(stopRead)
        close(stopWrite)
        if case .unix(let path) = address { unlink(path) }
    }

    private func acceptLoop() {
        while true {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, -1)
            if n < 0 {
                if errno == EINTR { continue }
                log.error("debug console: poll: \(errnoText(errno))")
                return
            }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            let client = ks_hv_accept(listener, 1)
            if client < 0 {
                if client != -EAGAIN && client != -EINTR && client != -ECONNABORTED {
                    log.warning("debug console: accept: \(errnoText(-client))")
                }
                continue
            }
            startSession(client)
        }
    }

    private func startSession(_ client: Int32) {
        let id = nextSession.wrappingAdd(1, ordering: .relaxed).oldValue
        let session = DebugConsoleSession(id: id, socket: client, stop: stopRead, shell: shell, log: log)
        threads.enter()
        let rc = spawnThread(name: "debug-console-\(id)") { [threads] in
            session.run()
            threads.leave()
        }
        if rc != 0 {
            threads.leave()
            log.warning("debug console: session \(id): pthread_create: \(errnoText(rc))")
            close(client)
        }
    }
}

extension KataAgent {
    /// The debug console when configured. A console that cannot start is logged, not fatal: the
    /// guest still serves the shim.
    static func startDebugConsole(_ config: AgentConfig, log: AgentLog) -> DebugConsole? {
        guard let address = config.debugConsole else { return nil }
        do {
            return try DebugConsole(on: address, log: log)
        } catch {
            log.error("\(error)")
            return nil
        }
    }
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Runs `body` on a new detached thread named `name` (15 bytes kept). 0, or the pthread error.
private func spawnThread(name: String, _ body: @escaping @Sendable () -> Void) -> Int32 {
    let box = Unmanaged.passRetained(ThreadBody {
        _ = ks_set_thread_name(String(name.prefix(15)))
        body()
    }).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { arg in
        guard let arg else { return nil }
        Unmanaged<ThreadBody>.fromOpaque(arg).takeRetainedValue().body()
        return nil
    }, box)
    if rc != 0 { Unmanaged<ThreadBody>.fromOpaque(box).release() }
    return rc
}
