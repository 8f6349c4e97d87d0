import Devices
import Logging
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Firecracker's hybrid vsock on a Unix socket, for tools outside the shim:
/// - host-initiated: a client connects to `path`, writes `CONNECT <port>\n`, gets
///   `OK <hostport>\n` once the guest accepted, then raw bytes; a refused or bad request closes it.
/// - guest-initiated: a guest connection to host port P (one of `forwardedPorts`) is joined to a
///   new connection to the Unix socket `<path>_<P>`; if nothing listens there, the guest sees
///   the connection closed.
final class HybridVsockServer: Sendable {
    enum Token: RawRepresentable, Sendable {
        case listener, wake, client(Int32)
        init?(rawValue: UInt64) {
            switch rawValue {
            case 1: self = .listener
            case 3: self = .wake
            case 16...: self = .client(Int32(truncatingIfNeeded: rawValue - 16))
            default: return nil
            }
        }
        var rawValue: UInt64 {
            switch self {
            case .listener: 1
            case .wake: 3
            case .client(let fd): 16 + UInt64(fd)
            }
        }
    }

    /// The longest request line we read (`CONNECT 4294967295\n` is 19 bytes).
    static let maxRequest = 32

    let path: String
    private let muxer: VsockMuxer
    private let bridge: VsockBridge
    private let listener: FileDescriptor
    private let events: EventManager<Token>
    private let wake: EventFD
    private let vsockListeners: [VsockListener]
    private let logger: Logger
    private let thread = Mutex<WorkerThread?>(nil)

    init(path: String, muxer: VsockMuxer, bridge: VsockBridge, forwardedPorts: [UInt32], logger: Logger) throws(HypervisorError) {
        self.path = path
        self.muxer = muxer
        self.bridge = bridge
        self.logger = logger
        do {
            listener = try UnixSocket.listen(path: path)
            events = try EventManager()
            wake = try EventFD()
            try events.add(listener, token: .listener)
            try events.add(wake.fd, token: .wake)
        } catch {
            unlink(path)
            throw .system(operation: "hybrid vsock listen on \(path)", error)
        }
        var listeners: [VsockListener] = []
        for port in forwardedPorts {
            do {
                let l = try muxer.listen(port: port)
                let wake = self.wake
                l.setEventHandler { try? wake.signal() }
                listeners.append(l)
            } catch {
                listeners.forEach { $0.close() }
                unlink(path)
                throw .invalidConfig("hybrid vsock: \(error)")
            }
        }
        vsockListeners = listeners
        do {
            let worker = try WorkerThread(name: "vsock-hybrid") { [self] in run() }
            thread.withLock { $0 = worker }
        } catch {
            listeners.forEach { $0.close() }
            unlink(path)
            throw .system(operation: "hybrid vsock thread", error)
        }
    }

    /// Stops accepting, closes half-open clients and the forwarded listeners, removes the socket.
    func stop() {
        events.stop()
        if let worker = thread.withLock({ $0 }), !worker.isCurrent { worker.join() }
        vsockListeners.forEach { $0.close() }
        unlink(path)
    }

    private func run() {
        var pending: [Int32: (socket: FileDescriptor, buffer: [UInt8])] = [:]
        do {
            try events.run { token, _ in
                switch token {
                case .listener:
                    while let client = try? UnixSocket.accept(listener) {
                        if (try? events.add(client, token: .client(client.rawValue))) != nil {
                            pending[client.rawValue] = (client, [])
                        }
                    }
                case .wake:
                    _ = try? wake.consume()
                    forwardGuestConnections()
                case .client(let fd):
                    guard var entry = pending[fd] else { return }
                    switch readRequest(&entry) {
                    case .needMore:
                        pending[fd] = entry
                    case .bad(let why):
                        logger.debug("hybrid vsock: \(why)")
                        try? events.remove(entry.socket)
                        pending[fd] = nil
                    case .connect(let port):
                        try? events.remove(entry.socket)
                        pending[fd] = nil
                        do {
                            let stream = try muxer.connect(port: port)
                            bridge.join(socket: entry.socket, stream: stream, greeting: Array("OK \(stream.hostPort)\n".utf8))
                        } catch {
                            logger.debug("hybrid vsock: connect \(port): \(error)")
                        }
                    }
                }
            }
        } catch {
            logger.error("hybrid vsock: epoll_wait: \(error)")
        }
        for entry in pending.values { try? events.remove(entry.socket) }
    }

    private enum Request {
        case needMore, bad(String), connect(UInt32)
    }

    private func readRequest(_ entry: inout (socket: FileDescriptor, buffer: [UInt8])) -> Request {
        // Read one byte at a time up to the newline, so no payload byte after it is consumed.
        while entry.buffer.count < Self.maxRequest {
            let byte: [UInt8]?
            do {
                byte = try UnixSocket.receive(entry.socket, max: 1)
            } catch {
                return .bad("reading the request: \(error)")
            }
            guard let byte else { return .needMore }
            guard let b = byte.first else { return .bad("client closed before a request") }
            if b == UInt8(ascii: "\n") { return Self.parse(entry.buffer) }
            entry.buffer.append(b)
        }
        return .bad("request line longer than \(Self.maxRequest) bytes")
    }

    /// `CONNECT <port>` (the newline already stripped) -> the port.
    private static func parse(_ line: [UInt8]) -> Request {
        let text = String(decoding: line, as: UTF8.self)
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0] == "CONNECT", let port = UInt32(parts[1]) else {
            return .bad("bad request \(text.debugDescription)")
        }
        return .connect(port)
    }

    private func forwardGuestConnections() {
        for l in vsockListeners {
            while let stream = l.accept() {
                let target = "\(path)_\(l.port)"
                do {
                    let socket = try UnixSocket.connect(path: target)
                    bridge.join(socket: socket, stream: stream)
                } catch {
                    logger.debug("hybrid vsock: guest connection to host port \(l.port): \(target): \(error)")
                    stream.close()
                }
            }
        }
    }
}
