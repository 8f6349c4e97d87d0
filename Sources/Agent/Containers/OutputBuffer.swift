// One output stream of a process (stdout, stderr, or a pty master): a dedicated thread reads
// the descriptor until EOF into a buffer; ReadStdout/ReadStderr take from the buffer and, when
// it is empty, suspend (no thread held) until data or EOF arrives. Nothing is lost when the
// process exits first: the data stays until read, and EOF is reported only after it.
import Dispatch
import Glibc
import Synchronization

final class OutputBuffer: Sendable {
    /// Above this much unread output the reader thread stops reading, so a process writing
    /// faster than the host reads blocks on its pipe instead of filling guest memory.
    static let highWater = 4 << 20
    static let chunk = 64 << 10

    private struct Waiter {
        let id: UInt64
        let max: Int
        let continuation: CheckedContinuation<[UInt8], Never>
    }

    private struct State: ~Copyable {
        var data: [UInt8] = []
        var start = 0
        var eof = false
        var waiters: [Waiter] = []
        var nextWaiter: UInt64 = 0
        var readerParked = false
        var available: Int { data.count - start }

        mutating func take(_ max: Int) -> [UInt8] {
            let n = Swift.min(max, available)
            let out = Array(data[start..<start + n])
            start += n
            if start == data.count {
                data.removeAll(keepingCapacity: data.capacity <= 1 << 20)
                start = 0
            } else if start > 1 << 20 {
                data.removeFirst(start)
                start = 0
            }
            return out
        }
    }

    private let state = Mutex(State())
    private let space = DispatchSemaphore(value: 0)

    /// A stream that is at EOF from the start (stderr of a terminal process).
    static func ended() -> OutputBuffer {
        let b = OutputBuffer()
        b.state.withLock { $0.eof = true }
        return b
    }

    /// Starts the reader thread; it owns `fd` and closes it at EOF (or on EIO: a pty whose
    /// slave side is gone).
    static func reading(_ fd: Int32) throws(AgentError) -> OutputBuffer {
        let b = OutputBuffer()
        do {
            try BlockingThread.start { b.pump(fd) }
        } catch {
            close(fd)
            throw error
        }
        return b
    }

    private func pump(_ fd: Int32) {
        var buf = [UInt8](repeating: 0, count: Self.chunk)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            let (ready, park) = state.withLock { s -> ([(Waiter, [UInt8])], Bool) in
                s.data.append(contentsOf: buf[0..<n])
                var ready: [(Waiter, [UInt8])] = []
                while !s.waiters.isEmpty && s.available > 0 {
                    let w = s.waiters.removeFirst()
                    ready.append((w, s.take(w.max)))
                }
                s.readerParked = s.available >= Self.highWater
                return (ready, s.readerParked)
            }
            for (w, bytes) in ready { w.continuation.resume(returning: bytes) }
            if park { space.wait() }
        }
        close(fd)
        let waiters = state.withLock { s in
            s.eof = true
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.continuation.resume(returning: []) }
    }

    /// Up to `max` bytes (at least one), or empty at EOF. Suspends while the buffer is empty.
    /// A cancelled call returns empty and leaves the data for the next reader.
    func read(max: Int) async -> [UInt8] {
        let max = Swift.max(1, max)
        let id = state.withLock { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8], Never>) in
                let (now, unpark) = state.withLock { s -> ([UInt8]?, Bool) in
                    if s.available > 0 {
                        let bytes = s.take(max)
                        let unpark = s.readerParked && s.available < Self.highWater
                        if unpark { s.readerParked = false }
                        return (bytes, unpark)
                    }
                    if s.eof || Task.isCancelled { return ([], false) }
                    s.waiters.append(Waiter(id: id, max: max, continuation: continuation))
                    return (nil, false)
                }
                if unpark { space.signal() }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let w = state.withLock { s -> Waiter? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i)
            }
            w?.continuation.resume(returning: [])
        }
    }

    /// Bytes buffered and not yet read (tests, diagnostics).
    var unread: Int { state.withLock { $0.available } }
}
