import CSupport
import Glibc
import SystemSupport

/// The host end of a debug-console session: Firecracker's hybrid vsock handshake, then the local
/// terminal (or pipes) joined to the guest's shell.
enum DebugConsoleClient {
    /// Ctrl-]: leaves the session at once when stdin is a terminal (as telnet and virsh do).
    static let escapeByte: UInt8 = 0x1d
    /// Typed when a non-terminal stdin ends: ^D (end of file for a program reading the pty in
    /// canonical mode, or for the shell's line editor), then `exit`, for the shell that read its
    /// input ahead while the pty was still canonical (busybox ash then sees the ^D as a NUL,
    /// which it ignores).
    static let endOfInput: [UInt8] = [0x04] + Array("exit\n".utf8)

    /// Connects to `path`, sends `CONNECT <port>\n` and waits for `OK <hostport>\n`.
    static func connect(path: String, port: UInt32, timeoutSeconds: Double) throws(ExecError) -> FileDescriptor {
        let rc = ks_unix_connect(path)
        guard rc >= 0 else {
            switch -rc {
            case ENOENT: throw .socketMissing(path)
            case ECONNREFUSED: throw .notListening(path)
            default: throw .connect(path, Errno(rawValue: -rc))
            }
        }
        let socket = FileDescriptor(owning: rc)
        do {
            try socket.writeAll(Array("CONNECT \(port)\n".utf8))
        } catch {
            throw .refused(path: path, port: port)
        }
        let line = try readLine(socket, path: path, port: port, timeoutSeconds: timeoutSeconds)
        guard line.hasPrefix("OK ") else { throw .badAnswer(line) }
        return socket
    }

    /// The handshake's answer, one byte at a time so no shell output after it is consumed.
    /// The hybrid server closes the connection without an answer when the guest refuses.
    private static func readLine(
        _ socket: FileDescriptor, path: String, port: UInt32, timeoutSeconds: Double
    ) throws(ExecError) -> String {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        var line: [UInt8] = []
        while line.count < 64 {
            let left = deadline - ContinuousClock.now
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            guard ms > 0 else { throw .timedOut(port: port, seconds: timeoutSeconds) }
            var p = pollfd(fd: socket.rawValue, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, ms)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .timedOut(port: port, seconds: timeoutSeconds) }
            let byte: [UInt8]
            do {
                byte = try socket.read(upTo: 1)
            } catch {
                if error.rawValue == ECONNRESET { throw .refused(path: path, port: port) }
                throw .io("reading the answer of \(path)", error)
            }
            guard let b = byte.first else { throw .refused(path: path, port: port) }
            if b == UInt8(ascii: "\n") { break }
            line.append(b)
        }
        return String(decoding: line, as: UTF8.self)
    }

    /// Joins stdin/stdout to the session until the guest closes it (the shell exited), stdout
    /// goes away, or Ctrl-] is typed. The terminal, when raw, is restored on every way out
    /// (fatal signals included, by ks_console_tty_raw's handlers).
    static func relay(_ socket: FileDescriptor, sandboxID: String) throws(ExecError) {
        let interactive = isatty(0) == 1
        if interactive {
            let rc = ks_console_tty_raw(0)
            guard rc == 0 else { throw .terminal(Errno(rawValue: -rc)) }
            FileDescriptor.stderrLine("kata-ctl: connected to the debug console of \(sandboxID); Ctrl-] leaves\r")
        }
        defer { ks_console_tty_restore() }
        // stdin -> guest on its own thread (blocking reads of a terminal or pipe); the process
        // ends when the guest side ends, whatever that thread is blocked in.
        let fd = socket.rawValue
        try? WorkerThread.detach(name: "console-input") {
            forwardInput(to: fd, interactive: interactive)
        }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            // End of stream, or a reset when the agent's side went away: the session is over.
            if n <= 0 { break }
            guard (try? writeAll(1, buffer[0..<n])) != nil else { break }
        }
        if interactive { FileDescriptor.stderrLine("\r\nkata-ctl: debug console session ended\r") }
    }

    private static func forwardInput(to socket: Int32, interactive: Bool) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                if !interactive { try? writeAll(socket, endOfInput) }
                return
            }
            var chunk = buffer[0..<n]
            if interactive, let escape = chunk.firstIndex(of: escapeByte) {
                chunk = chunk[..<escape]
                try? writeAll(socket, chunk)
                // Wakes the reader on the main thread with end of stream.
                _ = ks_unix_shutdown(socket, 2)
                return
            }
            guard (try? writeAll(socket, chunk)) != nil else { return }
        }
    }
}
