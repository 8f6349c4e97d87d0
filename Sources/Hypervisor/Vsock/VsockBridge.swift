import Devices
import Logging
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Joins host Unix sockets to guest vsock streams, byte for byte, on one thread (one
/// `EventManager`: the wake eventfd and each socket it waits on).
///
/// Used for the descriptors `connectVsock` hands out (one end of a socketpair) and for the
/// hybrid socket's clients. Both directions respect back-pressure: at most `chunk` bytes wait
/// on either side before the bridge stops reading the other. End of stream travels both ways
/// (socket EOF → vsock SHUTDOWN(send); guest shutdown → shutdown(SHUT_WR)); a reset or a
/// vanished VM closes the socket.
final class VsockBridge: Sendable {
    static let chunk = 64 * 1024

    /// A pair being joined. `greeting` is sent to the socket once the stream is established
    /// (the hybrid protocol's `OK <port>\n`); before that nothing is forwarded.
    final class Pair {
        let socket: FileDescriptor
        let stream: VsockStream
        var greeting: [UInt8]?
        var toSocket: [UInt8] = []
        var toGuest: [UInt8] = []
        var socketEOF = false
        var guestEOFSent = false
        var interest: EpollEvents = []
        init(socket: FileDescriptor, stream: VsockStream, greeting: [UInt8]?) {
            self.socket = socket
            self.stream = stream
            self.greeting = greeting
        }
    }

    struct Token: RawRepresentable, Sendable {
        var rawValue: UInt64
        static let wake = Token(rawValue: 1)
        static func socket(_ fd: Int32) -> Token { Token(rawValue: 16 + UInt64(fd)) }
        var socketFD: Int32? { rawValue >= 16 ? Int32(rawValue - 16) : nil }
    }

    private let events: EventManager<Token>
    private let wake: EventFD
    private let logger: Logger
    /// Pairs handed over by other threads, adopted by the bridge thread.
    private let incoming = Mutex<[Pair]>([])
    private let thread = Mutex<WorkerThread?>(nil)
    private let count = Atomic<Int>(0)

    init(logger: Logger) throws(HypervisorError) {
        self.logger = logger
        do {
            events = try EventManager()
            wake = try EventFD()
            try events.add(wake.fd, token: .wake)
            let worker = try WorkerThread(name: "vsock-bridge") { [self] in run() }
            thread.withLock { $0 = worker }
        } catch {
            throw .system(operation: "vsock bridge setup", error)
        }
    }

    /// Pairs currently joined (tests check that closed connections go away).
    var activePairs: Int { count.load(ordering: .relaxed) }

    /// Joins `socket` (made non-blocking here) to `stream`.
    func join(socket: FileDescriptor, stream: VsockStream, greeting: [UInt8]? = nil) {
        try? socket.setNonBlocking()
        incoming.withLock { $0.append(Pair(socket: socket, stream: stream, greeting: greeting)) }
        poke()
    }

    func poke() { try? wake.signal() }

    /// Ends the thread and closes every joined socket and stream. Idempotent.
    func stop() {
        events.stop()
        if let worker = thread.withLock({ $0 }), !worker.isCurrent { worker.join() }
    }

    // MARK: the bridge thread

    private func run() {
        var pairs: [Int32: Pair] = [:]
        var dirty = Set<Int32>()
        do {
            try events.run(maxEvents: 64) { token, _ in
                if token.rawValue == Token.wake.rawValue {
                    _ = try? wake.consume()
                    dirty.formUnion(pairs.keys)
                } else if let fd = token.socketFD {
                    dirty.insert(fd)
                }
            } afterBatch: {
                for pair in incoming.withLock({ list in defer { list = [] }; return list }) {
                    let fd = pair.socket.rawValue
                    pairs[fd] = pair
                    let wake = self.wake
                    pair.stream.setEventHandler { try? wake.signal() }
                    dirty.insert(fd)
                }
                for fd in dirty {
                    guard let pair = pairs[fd] else { continue }
                    if !pump(pair) {
                        if !pair.interest.isEmpty { try? events.remove(pair.socket) }
                        pair.stream.setEventHandler {}
                        pair.stream.close()
                        pairs[fd] = nil
                    } else {
                        updateInterest(pair)
                    }
                }
                dirty = []
                count.store(pairs.count, ordering: .relaxed)
            }
        } catch {
            logger.error("vsock bridge: epoll_wait: \(error)")
        }
        for pair in pairs.values {
            if !pair.interest.isEmpty { try? events.remove(pair.socket) }
            pair.stream.setEventHandler {}
            pair.stream.close()
        }
        count.store(0, ordering: .relaxed)
    }

    /// Moves what can move; false when the pair is finished and must be closed.
    private func pump(_ pair: Pair) -> Bool {
        let phase = pair.stream.phase
        if let greeting = pair.greeting {
            switch phase {
            case .connecting: return true
            case .established:
                pair.toSocket = greeting
                pair.greeting = nil
            case .closing, .closed:
                return false
            }
        }
        do {
            // guest -> socket: until the stream is empty or the socket is full. Stopping after one
            // chunk while the socket still had room left the rest in the muxer with no event to
            // come (the guest had sent everything): a 300 KB echo stalled that way.
            var streamDrained = false
            while !streamDrained {
                while pair.toSocket.count < Self.chunk {
                    let bytes = try pair.stream.read(maxCount: Self.chunk)
                    if bytes.isEmpty {
                        streamDrained = true
                        break
                    }
                    pair.toSocket += bytes
                }
                while !pair.toSocket.isEmpty {
                    let sent = try UnixSocket.send(pair.socket, pair.toSocket[...])
                    if sent == 0 { break }
                    pair.toSocket.removeFirst(sent)
                }
                if !pair.toSocket.isEmpty { break }  // socket full: wait until it is writable
            }
            if pair.toSocket.isEmpty, pair.stream.isAtEnd {
                UnixSocket.shutdownWrite(pair.socket)
                if pair.socketEOF || isClosed(phase) { return false }
            }
            // socket -> guest
            while !pair.socketEOF {
                if pair.toGuest.isEmpty {
                    guard let bytes = try UnixSocket.receive(pair.socket, max: Self.chunk) else { break }
                    if bytes.isEmpty {
                        pair.socketEOF = true
                        break
                    }
                    pair.toGuest = bytes
                }
                let accepted = try pair.stream.write(pair.toGuest)
                pair.toGuest.removeFirst(accepted)
                if !pair.toGuest.isEmpty { break }
            }
            if pair.socketEOF, pair.toGuest.isEmpty, !pair.guestEOFSent {
                pair.stream.shutdown(.send)
                pair.guestEOFSent = true
            }
        } catch let error as VsockError {
            logger.debug("vsock bridge: guest port \(pair.stream.guestPort): \(error)")
            return false
        } catch {
            logger.debug("vsock bridge: socket \(pair.socket): \(error)")
            return false
        }
        if isClosed(phase), pair.toSocket.isEmpty { return false }
        return true
    }

    private func isClosed(_ phase: VsockConnectionPhase) -> Bool {
        if case .closed = phase { return true }
        return false
    }

    private func updateInterest(_ pair: Pair) {
        var wanted: EpollEvents = []
        if !pair.socketEOF, pair.toGuest.isEmpty, pair.greeting == nil { wanted.insert(.readable) }
        if !pair.toSocket.isEmpty { wanted.insert(.writable) }
        guard wanted != pair.interest else { return }
        if !pair.interest.isEmpty { try? events.remove(pair.socket) }
        pair.interest = []
        if !wanted.isEmpty, (try? events.add(pair.socket, events: wanted, token: .socket(pair.socket.rawValue))) != nil {
            pair.interest = wanted
        }
    }
}
