// One debug-console connection: a shell on a new pty, bytes relayed both ways on this session's
// own thread (poll over non-blocking descriptors, bounded buffers, so neither side can stall the
// other), then the shell hung up and reaped.
//
// The session ends when the client closes (the shell is hung up), when the pty reports that
// every holder of its slave side is gone (the shell exited; its output is delivered first), or
// when the console stops. A shell that outlives the hangup gets SIGKILL.

import CSupport
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Why a relay ended.
enum DebugConsoleEnd: Equatable, CustomStringConvertible {
    case clientClosed
    case shellClosed
    case stopped
    case failed(String)

    var description: String {
        switch self {
        case .clientClosed: "client closed the connection"
        case .shellClosed: "shell ended"
        case .stopped: "console stopped"
        case .failed(let why): why
        }
    }
}

struct DebugConsoleSession: Sendable {
    /// At most this many bytes wait in either direction before the other side is read again.
    static let bufferLimit = 64 * 1024
    /// After the shell exited, how long its pty may stay open (a background job holding it)
    /// before the session ends anyway.
    static let exitGraceMs = 500
    /// After the hangup, how long the shell has before SIGKILL.
    static let hangupGraceMs: Int32 = 2000
    /// After the shell's side closed, how long a client that does not read may keep the session.
    static let flushGraceMs = 5000

    let id: Int
    /// The client connection (owned, closed at the end).
    let socket: Int32
    /// The console's stop pipe (not owned): readable once the console stops.
    let stop: Int32
    let shell: DebugConsole.Shell
    let log: AgentLog

    func run() {
        defer { close(socket) }
        setNonBlocking(socket)
        var child = ks_console_shell(pid: -1, pidfd: -1, master: -1)
        let rc = withCStrings([shell.path] + shell.arguments + shell.environment) { strings in
            let argv = Array(strings[1..<(1 + shell.arguments.count)]) + [nil]
            let envp = Array(strings[(1 + shell.arguments.count)...])  // ends with withCStrings' NULL
            return ks_console_spawn(UnsafePointer(strings[0]), argv, envp, shell.rows, shell.columns, &child)
        }
        guard rc == 0 else {
            let why = "cannot start \(shell.path): \(Errno(-rc))"
            log.error("debug console: session \(id): \(why)")
            let text = Array("kata-agent debug console: \(why)\r\n".utf8)
            _ = text.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            return
        }
        log.info("debug console: session \(id): \(shell.path) started (pid \(child.pid))")
        let end = relay(master: child.master, pidfd: child.pidfd)
        // Closing the master hangs up the pty: the kernel sends SIGHUP to the shell (the session
        // leader) and to the foreground job. SIGHUP goes to the shell directly as well, in case
        // it gave the terminal away.
        close(child.master)
        let status = hangUpAndReap(pidfd: child.pidfd)
        close(child.pidfd)
        log.info("debug console: session \(id): \(end); shell \(status)")
    }

    /// Moves bytes socket -> pty master and master -> socket until one of the ends.
    func relay(master: Int32, pidfd: Int32) -> DebugConsoleEnd {
        var toShell: [UInt8] = []
        var toClient: [UInt8] = []
        var masterClosed = false
        var shellExitedAt: UInt64?
        var masterClosedAt: UInt64?
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)

        while true {
            if masterClosed && toClient.isEmpty { return .shellClosed }
            if masterClosed && masterClosedAt == nil { masterClosedAt = BootClock.nanoseconds() }
            var timeout: Int32 = -1
            if let since = masterClosedAt ?? shellExitedAt {
                let grace = masterClosedAt != nil ? Self.flushGraceMs : Self.exitGraceMs
                let waited = Int((BootClock.nanoseconds() - since) / 1_000_000)
                if waited >= grace { return .shellClosed }
                timeout = Int32(grace - waited)
            }
            var socketEvents: Int16 = toClient.isEmpty ? 0 : Int16(POLLOUT)
            if toShell.count < Self.bufferLimit && !masterClosed { socketEvents |= Int16(POLLIN) }
            var masterEvents: Int16 = toShell.isEmpty || masterClosed ? 0 : Int16(POLLOUT)
            if toClient.count < Self.bufferLimit && !masterClosed { masterEvents |= Int16(POLLIN) }
            // A negative fd is skipped by poll: nothing wanted from it now.
            var fds = [
                pollfd(fd: socketEvents == 0 ? -1 : socket, events: socketEvents, revents: 0),
                pollfd(fd: masterEvents == 0 ? -1 : master, events: masterEvents, revents: 0),
                pollfd(fd: shellExitedAt == nil ? pidfd : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stop, events: Int16(POLLIN), revents: 0),
            ]
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 {
                if errno == EINTR { continue }
                return .failed("poll: \(Errno(errno))")
            }
            if fds[3].revents != 0 { return .stopped }
            if fds[2].revents != 0 { shellExitedAt = BootClock.nanoseconds() }

            // Errors and hangups are found by attempting the wanted operation.
            let socketReady = fds[0].revents
            if socketReady != 0 {
                if socketEvents & Int16(POLLIN) != 0 {
                    switch readSome(socket, into: &scratch) {
                    case .data(let count): toShell += scratch[0..<count]
                    case .again: break
                    case .end, .error: return .clientClosed
                    }
                }
                if !toClient.isEmpty {
                    switch writeSome(socket, &toClient) {
                    case .ok: break
                    case .error: return .clientClosed
                    }
                }
            }
            let masterReady = fds[1].revents
            if masterReady != 0 {
                if masterEvents & Int16(POLLIN) != 0 {
                    switch readSome(master, into: &scratch) {
                    case .data(let count): toClient += scratch[0..<count]
                    case .again: break
                    // EIO: every descriptor of the slave side is closed (the shell is gone).
                    case .end, .error: masterClosed = true
                    }
                }
                if !toShell.isEmpty && !masterClosed {
                    switch writeSome(master, &toShell) {
                    case .ok: break
                    case .error: masterClosed = true
                    }
                }
                if masterClosed { toShell.removeAll() }
            }
        }
    }

    enum ReadResult { case data(Int), again, end, error(Int32) }
    enum WriteResult { case ok, error(Int32) }

    private func readSome(_ fd: Int32, into buffer: inout [UInt8]) -> ReadResult {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { return .data(n) }
            if n == 0 { return .end }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .again }
            return .error(errno)
        }
    }

    /// Writes what the descriptor takes now and drops it from `pending`.
    private func writeSome(_ fd: Int32, _ pending: inout [UInt8]) -> WriteResult {
        while !pending.isEmpty {
            let n = pending.withUnsafeBytes { bytes in
                fd == socket
                    ? send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
                    : write(fd, bytes.baseAddress, bytes.count)
            }
            if n > 0 {
                pending.removeFirst(n)
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .ok }
            return .error(n < 0 ? errno : EIO)
        }
        return .ok
    }

    /// SIGHUP, a grace period, SIGKILL; then reaps the shell through its pidfd (which cannot
    /// reach any other process). Returns how it ended, for the log.
    private func hangUpAndReap(pidfd: Int32) -> String {
        _ = ks_console_signal(pidfd, SIGHUP)
        _ = ks_console_signal(pidfd, SIGCONT)
        if !waitReadable(pidfd, ms: Self.hangupGraceMs) {
            _ = ks_console_signal(pidfd, SIGKILL)
            _ = waitReadable(pidfd, ms: 10_000)
        }
        var code: Int32 = 0
        switch ks_console_reap(pidfd, &code) {
        case 1: return "exited with status \(code)"
        case -ECHILD: return "reaped by the agent's reaper"
        case 0: return "still running after SIGKILL"
        case let rc: return "waitid: \(Errno(-rc))"
        }
    }

    private func waitReadable(_ fd: Int32, ms: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let n = poll(&p, 1, ms)
            if n < 0 && errno == EINTR { continue }
            return n > 0
        }
    }

    private func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }
}
