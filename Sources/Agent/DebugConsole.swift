// The debug console, off unless configured (kernel agent.debug_console, or --debug-console):
// every connection to its port gets a shell on a new pty (busybox /bin/sh in the guest), in the
// guest's own namespaces, as Kata's agent offers on vsock port 1026. The host reaches it with
// `kata-ctl exec <sandbox>` through the hybrid vsock socket.
//
// Threads: one listener thread blocked in poll(2), and one thread per session (see
// DebugConsoleSession); none of them touches the concurrency pool or the ttrpc event loops.

import CGuest
import CSupport
import Dispatch
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Why the debug console could not start.
public enum DebugConsoleError: Error, Equatable, CustomStringConvertible {
    case listen(ListenAddress, errno: Int32)
    case thread(errno: Int32)

    public var description: String {
        switch self {
        case .listen(let address, let errno): "debug console: listen on \(address): \(Errno(errno))"
        case .thread(let errno): "debug console: accept loop (pipe, pthread_create): \(Errno(errno))"
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
    private let loop: Mutex<AcceptLoop?> = Mutex(nil)
    private let shell: Shell
    private let log: AgentLog
    /// Every session thread is in the group until it ends.
    private let sessions = DispatchGroup()
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
            fd = ks_unix_listen(path, 16, 0, 0)
        }
        guard fd >= 0 else { throw .listen(address, errno: -fd) }
        listener = fd
        do {
            let loop = try AcceptLoop(listener: fd, name: "debug-console", failed: { [log] in
                log.error("debug console: poll: \($0)")
            }) { [self] client in startSession(client) }
            self.loop.withLock { $0 = loop }
        } catch {
            close(fd)
            if case .unix(let path) = address { unlink(path) }
            throw .thread(errno: error.rawValue)
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
        guard first, let loop = loop.withLock({ $0 }) else { return }
        loop.stop()
        sessions.wait()
        self.loop.withLock { $0 = nil }  // no session polls its stop pipe any more: it closes
        close(listener)
        if case .unix(let path) = address { unlink(path) }
    }

    private func startSession(_ client: Int32) {
        guard let stop = loop.withLock({ $0?.stopDescriptor }) else {
            close(client)
            return
        }
        let id = nextSession.wrappingAdd(1, ordering: .relaxed).oldValue
        let session = DebugConsoleSession(id: id, socket: client, stop: stop, shell: shell, log: log)
        sessions.enter()
        do {
            try WorkerThread.detach(name: "debug-console-\(id)") { [sessions] in
                session.run()
                sessions.leave()
            }
        } catch {
            sessions.leave()
            log.warning("debug console: session \(id): pthread_create: \(error)")
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
