// Stdio streams over host file descriptors (FIFOs, files, pipes to logging binaries). Each stream
// owns its descriptor and does its blocking I/O on its own serial dispatch queue, so a slow reader
// on the other end suspends only the sandbox task writing to it, never the cooperative pool.

import CSupport
import Dispatch
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A failed stdio operation.
public enum StdioError: Error, Equatable, CustomStringConvertible {
    case open(path: String, errno: Int32)
    case write(errno: Int32)
    case read(errno: Int32)
    case closed
    case badURI(String)
    case pipe(errno: Int32)
    case loggerNotReady(path: String, reason: String)

    public var description: String {
        switch self {
        case .open(let path, let errno): "open \(path): \(Errno(errno))"
        case .write(let errno): "write process output: \(Errno(errno))"
        case .read(let errno): "read process input: \(Errno(errno))"
        case .closed: "stream is closed"
        case .badURI(let uri): "unsupported stdio URI \(uri) (expected a FIFO path, file:// or binary://)"
        case .pipe(let errno): "create pipe: \(Errno(errno))"
        case .loggerNotReady(let path, let reason): "logging binary \(path) did not become ready: \(reason)"
        }
    }
}

/// Writes to a descriptor it owns; `close` waits for earlier writes.
public final class FDWriter: StdioWriter, Sendable {
    private let fd: Int32
    private let queue: DispatchQueue
    private let state = Mutex(State())
    private let onClose: (@Sendable () -> Void)?

    private struct State {
        var closed = false
    }

    /// Takes ownership of `fd` (set to blocking mode). `onClose` runs after the descriptor is closed.
    public init(fd: Int32, label: String, onClose: (@Sendable () -> Void)? = nil) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        self.fd = fd
        self.queue = DispatchQueue(label: "kata-swift.stdio.\(label)")
        self.onClose = onClose
    }

    deinit {
        if !state.withLock({ $0.closed }) {
            Glibc.close(fd)
            onClose?()
        }
    }

    public func write(_ bytes: [UInt8]) async throws {
        guard !state.withLock({ $0.closed }) else { throw StdioError.closed }
        let fd = self.fd
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async {
                do throws(Errno) {
                    try writeAll(fd, bytes)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: StdioError.write(errno: error.rawValue))
                }
            }
        }
    }

    public func close() async {
        guard state.withLock({ closed in
            defer { closed.closed = true }
            return !closed.closed
        }) else { return }
        let fd = self.fd
        let onClose = self.onClose
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                Glibc.close(fd)
                onClose?()
                continuation.resume()
            }
        }
    }
}

/// Reads from a descriptor it owns (opened non-blocking); `close` wakes a pending read.
public final class FDReader: StdioReader, Sendable {
    private let fd: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let queue: DispatchQueue
    private let state = Mutex(State())

    private struct State {
        var closed = false
        var finishing = false
    }

    /// Takes ownership of `fd`, which must be non-blocking.
    public init(fd: Int32, label: String) throws(StdioError) {
        var wake: [Int32] = [-1, -1]
        let rc = wake.withUnsafeMutableBufferPointer { ks_pipe_cloexec($0.baseAddress) }
        guard rc == 0 else {
            Glibc.close(fd)
            throw .pipe(errno: -rc)
        }
        self.fd = fd
        self.wakeRead = wake[0]
        self.wakeWrite = wake[1]
        self.queue = DispatchQueue(label: "kata-swift.stdin.\(label)")
    }

    deinit {
        if !state.withLock({ $0.closed }) {
            Glibc.close(fd)
            Glibc.close(wakeRead)
            Glibc.close(wakeWrite)
        }
    }

    public func read(maxBytes: Int) async throws -> [UInt8] {
        guard !state.withLock({ $0.closed }) else { return [] }
        let count = max(1, min(maxBytes, 1 << 20))
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
            queue.async { [self] in
                continuation.resume(with: Result { try blockingRead(count: count) })
            }
        }
    }

    /// Waits for data, end of stream, or the wake pipe (close: end now; finish: drain, then end).
    private func blockingRead(count: Int) throws -> [UInt8] {
        if state.withLock({ $0.closed }) { return [] }
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, 2, -1) }
            if ready < 0 {
                if errno == EINTR { continue }
                throw StdioError.read(errno: errno)
            }
            let woken = fds[1].revents != 0
            if woken && !state.withLock({ $0.finishing && !$0.closed }) { return [] }
            if fds[0].revents == 0 && !woken { continue }
            let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if got < 0 {
                if errno == EAGAIN && woken { return [] }  // finishing and nothing left
                if errno == EINTR || errno == EAGAIN { continue }
                throw StdioError.read(errno: errno)
            }
            return Array(buffer[0..<got])
        }
    }

    public func finish() async {
        guard state.withLock({ state in
            defer { state.finishing = true }
            return !state.finishing && !state.closed
        }) else { return }
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    public func close() async {
        guard state.withLock({ state in
            defer { state.closed = true }
            return !state.closed
        }) else { return }
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
        let descriptors = (fd, wakeRead, wakeWrite)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                Glibc.close(descriptors.0)
                Glibc.close(descriptors.1)
                Glibc.close(descriptors.2)
                continuation.resume()
            }
        }
    }
}
