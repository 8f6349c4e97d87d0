// A process's stdin: WriteStdin calls are written in order, each on its own thread (a full pipe
// blocks that thread, not the pool); CloseStdin closes after what was written before it. For a
// terminal the "close" is an end-of-file character (^D) on the pty, as the line discipline
// turns it into EOF for the reader.
import Glibc
import Synchronization
import SystemSupport

actor StdinWriter {
    private final class Descriptor: Sendable {
        let fd = Mutex<Int32?>(nil)
        let terminal: Bool
        init(_ fd: Int32, terminal: Bool) {
            self.fd.withLock { $0 = fd }
            self.terminal = terminal
        }
        deinit { fd.withLock { if let f = $0 { Glibc.close(f) } } }
    }

    private let descriptor: Descriptor
    /// The last queued operation; the next one starts after it.
    private var tail: Task<Void, Never>?
    /// For a terminal: whether the last byte written ended a line (^D only ends a line's input).
    private var atLineStart = true

    /// Takes ownership of `fd` (the write end of the stdin pipe, or a dup of the pty master).
    init(fd: Int32, terminal: Bool) {
        descriptor = Descriptor(fd, terminal: terminal)
    }

    /// Writes all of `bytes`; returns how many.
    func write(_ bytes: [UInt8]) async throws(AgentError) -> Int {
        if descriptor.terminal, let last = bytes.last { atLineStart = last == UInt8(ascii: "\n") }
        let d = descriptor
        let rc = await enqueue { () -> Int32 in
            // The lock only guards against a concurrent close; writes are already serialized.
            guard let fd = d.fd.withLock({ $0 }) else { return -EBADF }
            do throws(Errno) {
                try writeAll(fd, bytes)
                return 0
            } catch {
                return -error.rawValue
            }
        }
        if rc == -EBADF { throw .invalidState("stdin is closed") }
        if rc < 0 { throw .system(operation: "write stdin", errno: -rc) }
        return bytes.count
    }

    /// Closes stdin after every write queued before.
    func close() async {
        let d = descriptor
        let eof: [UInt8] = atLineStart ? [4] : [4, 4]
        _ = await enqueue { () -> Int32 in
            if d.terminal, let fd = d.fd.withLock({ $0 }) {
                try? writeAll(fd, eof)
            }
            d.fd.withLock { f in
                if let fd = f { Glibc.close(fd) }
                f = nil
            }
            return 0
        }
    }

    private func enqueue(_ op: @escaping @Sendable () -> Int32) async -> Int32 {
        let previous = tail
        let task = Task { () -> Int32 in
            await previous?.value
            do {
                return try await BlockingThread.run(op)
            } catch {
                return -EAGAIN
            }
        }
        tail = Task { _ = await task.value }
        return await task.value
    }
}
