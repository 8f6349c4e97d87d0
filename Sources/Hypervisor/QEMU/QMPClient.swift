import SystemSupport

/// A minimal client of QEMU's machine protocol (QMP, JSON lines on a Unix socket): enough to
/// pause, resume and quit. It reads the greeting, enters command mode, and sends one command at
/// a time, skipping asynchronous events until the command's `return` or `error` line.
/// Blocking: call it off the concurrency pool (the backend runs it in a detached thread hop).
struct QMPClient {
    let socket: FileDescriptor
    private var buffer: [UInt8] = []

    /// Connects and negotiates capabilities.
    init(path: String) throws(HypervisorError) {
        do {
            socket = try UnixSocket.connect(path: path)
        } catch {
            throw .qmp("connect to \(path): \(error)")
        }
        let greeting = try readLine()
        guard greeting.contains("\"QMP\"") else { throw .qmp("unexpected greeting \(greeting.prefix(120))") }
        try execute("qmp_capabilities")
    }

    /// Runs `command` (no arguments); throws with QEMU's error text if it refuses.
    mutating func execute(_ command: String) throws(HypervisorError) {
        do {
            try UnixSocket.sendAll(socket, Array("{\"execute\":\"\(command)\"}\n".utf8))
        } catch {
            throw .qmp("\(command): \(error)")
        }
        while true {
            let line = try readLine()
            if line.hasPrefix("{\"return\"") { return }
            if line.hasPrefix("{\"error\"") { throw .qmp("\(command): \(line)") }
            // {"event": ...}: asynchronous, not ours.
        }
    }

    private mutating func readLine() throws(HypervisorError) -> String {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeFirst(newline + 1)
                return line.trimmingSuffixWhitespace()
            }
            guard buffer.count < 1 << 20 else { throw .qmp("line longer than 1 MiB") }
            let bytes: [UInt8]
            do {
                bytes = try socket.read(upTo: 4096)
            } catch {
                throw .qmp("read: \(error)")
            }
            if bytes.isEmpty { throw .qmp("QEMU closed the control socket") }
            buffer += bytes
        }
    }
}

extension String {
    fileprivate func trimmingSuffixWhitespace() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\r" || last == " " { s = s.dropLast() }
        return String(s)
    }
}
