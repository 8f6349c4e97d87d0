import CShims
import Devices
import Logging
import Synchronization
import SystemSupport
import VhostUser
import VirtIO
#if canImport(Glibc)
import Glibc
#endif

/// Serves our vsock device model to a vhost-user frontend (QEMU) on a Unix socket.
///
/// One thread runs everything the device does: it accepts the frontend, reads each message with
/// its SCM_RIGHTS fds, hands it to a `VhostUserSession` (the codec and state machine), sends the
/// reply, watches the kick eventfds and runs the device's queues when they fire, and runs the
/// device's RX path when the muxer has packets for the guest. So the device is only ever touched
/// from this thread. One frontend at a time; when it goes away the device is reset (every vsock
/// connection ends) and the server waits for the next one.
final class VhostUserServer: @unchecked Sendable {
    // SAFETY (Sendable): `device` is the only non-Sendable member; after init it is touched only
    // by the server thread (run and what it calls). Everything else is immutable or locked.
    enum Token: RawRepresentable, Sendable {
        case listener, frontend, wake, stop, kick(Int)
        init?(rawValue: UInt64) {
            switch rawValue {
            case 1: self = .listener
            case 2: self = .frontend
            case 3: self = .wake
            case 4: self = .stop
            case 100..<116: self = .kick(Int(rawValue - 100))
            default: return nil
            }
        }
        var rawValue: UInt64 {
            switch self {
            case .listener: 1
            case .frontend: 2
            case .wake: 3
            case .stop: 4
            case .kick(let q): 100 + UInt64(q)
            }
        }
    }

    /// What the frontend connection has done so far.
    enum FrontendState: Equatable, Sendable {
        case waiting
        case connected
        /// The frontend hung up or broke the protocol.
        case disconnected(String)
    }

    let path: String
    let device: VsockDevice
    private let listener: FileDescriptor
    private let epoll: Epoll<Token>
    private let wake: EventFD
    private let stopEvent: EventFD
    private let logger: Logger
    private let status = Mutex<(state: FrontendState, messages: Int, waiters: [@Sendable (FrontendState) -> Void])>(
        (.waiting, 0, []))
    private let thread: Mutex<WorkerThread?> = Mutex(nil)

    /// The number of vhost-user queues of vsock: rx and tx (the event queue stays in QEMU).
    static let queueCount = 2

    /// Listens on `path` (replacing a stale socket file) and starts the server thread.
    init(path: String, device: VsockDevice, muxer: VsockMuxer, logger: Logger) throws(HypervisorError) {
        self.path = path
        self.device = device
        self.logger = logger
        do {
            listener = try UnixSocket.listen(path: path, backlog: 1)
            epoll = try Epoll()
            wake = try EventFD()
            stopEvent = try EventFD()
            try epoll.add(listener, events: .readable, token: .listener)
            try epoll.add(wake.fd, events: .readable, token: .wake)
            try epoll.add(stopEvent.fd, events: .readable, token: .stop)
        } catch {
            unlink(path)
            throw .system(operation: "vhost-user listen on \(path)", error)
        }
        let wake = self.wake
        muxer.setWakeHandler { try? wake.signal() }
        do {
            let worker = try WorkerThread(name: "vhost-user") { [self] in run() }
            thread.withLock { $0 = worker }
        } catch {
            unlink(path)
            throw .system(operation: "vhost-user thread", error)
        }
    }

    var frontendState: FrontendState { status.withLock { $0.state } }
    /// Messages handled since the server started (for tests and debugging).
    var messagesHandled: Int { status.withLock { $0.messages } }

    /// Calls `body` once the frontend state leaves `.waiting` (at once if it already has).
    func onFrontendChange(_ body: @escaping @Sendable (FrontendState) -> Void) {
        let now = status.withLock { s -> FrontendState? in
            if s.state != .waiting { return s.state }
            s.waiters.append(body)
            return nil
        }
        if let now { body(now) }
    }

    /// Stops the thread, drops the frontend, removes the socket file. Idempotent.
    func stop() {
        try? stopEvent.signal()
        let worker = thread.withLock { $0 }
        if let worker, !worker.isCurrent { worker.join() }
        unlink(path)
    }

    // MARK: the server thread

    private final class Connection {
        let socket: FileDescriptor
        let session: VhostUserSession
        let platform: SocketPlatform
        var decoder = VhostUserDecoder()
        var watchedKicks: [Int: Int32] = [:]
        init(socket: FileDescriptor, session: VhostUserSession, platform: SocketPlatform) {
            self.socket = socket
            self.session = session
            self.platform = platform
        }
    }

    private func run() {
        var connection: Connection?
        loop: while true {
            let events: [(token: Token, events: EpollEvents)]
            do {
                events = try epoll.wait(max: 32, timeoutMs: -1)
            } catch {
                logger.error("vhost-user: epoll_wait: \(error)")
                break
            }
            for (token, _) in events {
                switch token {
                case .stop:
                    break loop
                case .listener:
                    acceptFrontend(&connection)
                case .frontend:
                    guard let c = connection else { continue }
                    if let reason = serviceFrontend(c) { drop(&connection, reason: reason) }
                case .kick(let queue):
                    guard let c = connection, let fd = c.watchedKicks[queue] else { continue }
                    var value: UInt64 = 0
                    _ = Glibc.read(fd, &value, 8)
                    logger.trace("vhost-user: kick queue \(queue) (active \(c.session.isActive))")
                    c.session.kick(queue: queue)
                case .wake:
                    _ = try? wake.consume()
                    if let c = connection, c.session.isActive {
                        device.processBackend()
                    }
                }
            }
        }
        if connection != nil { drop(&connection, reason: "server stopped") }
    }

    private func acceptFrontend(_ connection: inout Connection?) {
        guard let socket = try? UnixSocket.accept(listener, nonBlocking: false) else { return }
        guard connection == nil else {
            logger.warning("vhost-user: refusing a second frontend on \(path)")
            return
        }
        do {
            try epoll.add(socket, events: .readable, token: .frontend)
        } catch {
            logger.error("vhost-user: watching the frontend: \(error)")
            return
        }
        let platform = SocketPlatform()
        let session = VhostUserSession(device: device, queueCount: Self.queueCount, platform: platform, logger: logger)
        connection = Connection(socket: socket, session: session, platform: platform)
        setState(.connected)
    }

    /// Reads and handles one message; returns why the connection must be dropped, if it must.
    private func serviceFrontend(_ c: Connection) -> String? {
        var header = [UInt8](repeating: 0, count: VhostUserMessage.headerSize)
        var fds = [Int32](repeating: -1, count: 8)
        var fdCount: Int32 = 0
        let n = header.withUnsafeMutableBytes {
            ks_hv_recv_with_fds(c.socket.rawValue, $0.baseAddress, $0.count, &fds, 8, &fdCount)
        }
        let received = Array(fds.prefix(Int(fdCount)))
        if n == 0 { return "frontend closed the connection" }
        if n < 0 { return "reading from the frontend: \(Errno(rawValue: Int32(-n)))" }
        func fail(_ why: String) -> String {
            received.forEach { _ = Glibc.close($0) }
            return why
        }
        do {
            var bytes = Array(header.prefix(n))
            while bytes.count < VhostUserMessage.headerSize {
                let more = try c.socket.read(upTo: VhostUserMessage.headerSize - bytes.count)
                if more.isEmpty { return fail("frontend closed the connection mid-header") }
                bytes += more
            }
            c.decoder.append(bytes)
            var message = try c.decoder.next()
            let size = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            var payloadRead = 0
            while message == nil {
                let more = try c.socket.read(upTo: size - payloadRead)
                if more.isEmpty { return fail("frontend closed the connection mid-message") }
                payloadRead += more.count
                c.decoder.append(more)
                message = try c.decoder.next()
            }
            guard let message else { return fail("no message") }
            status.withLock { $0.messages += 1 }
            logger.debug("vhost-user: request \(message.request) flags 0x\(String(message.flags, radix: 16)) payload \(message.payload.count) fds \(received.count)")
            let wasActive = c.session.isActive
            let reply: VhostUserMessage?
            do {
                reply = try c.session.handle(message, fds: received)
            } catch {
                logger.warning("vhost-user: request \(message.request) failed: \(error)")
                reply = c.session.reply(to: message, error: error)
            }
            if let reply { try UnixSocket.sendAll(c.socket, reply.bytes) }
            syncKicks(c)
            if c.session.isActive, message.knownRequest == .setVringCall, received.count == 1 {
                // QEMU swaps call fds when it unmasks the guest notifier; a used-buffer
                // interrupt sent to the old fd in between is lost. A spurious one is harmless.
                EventFDLine(fd: received[0]).signal()
            }
            if !wasActive, c.session.isActive {
                logger.debug("vhost-user: device started")
                // Kicks that came before the device started were consumed without effect, and
                // the muxer may already hold packets (a host connect during boot): run the queues.
                for queue in 0..<Self.queueCount { c.session.kick(queue: queue) }
                device.processBackend()
            }
            return nil
        } catch let error as VhostUserError {
            return fail("frontend broke the framing: \(error)")
        } catch {
            return fail("frontend I/O: \(error)")
        }
    }

    /// Watches exactly the session's current kick fds (re-adding after any change, as a closed
    /// fd silently leaves epoll and its number may come back).
    private func syncKicks(_ c: Connection) {
        for queue in 0..<Self.queueCount {
            let current = c.session.kickFD(ofQueue: queue)
            if current == c.watchedKicks[queue], current == nil { continue }
            if let old = c.watchedKicks[queue] {
                _ = ks_epoll_ctl(epoll.fd.rawValue, 2, old, 0, 0)
            }
            c.watchedKicks[queue] = nil
            if let fd = current, ks_epoll_ctl(epoll.fd.rawValue, 1, fd, EpollEvents.readable.rawValue, Token.kick(queue).rawValue) == 0 {
                c.watchedKicks[queue] = fd
            }
        }
    }

    private func drop(_ connection: inout Connection?, reason: String) {
        guard let c = connection else { return }
        for fd in c.watchedKicks.values { _ = ks_epoll_ctl(epoll.fd.rawValue, 2, fd, 0, 0) }
        try? epoll.remove(c.socket)
        if c.session.isActive { device.reset() }
        connection = nil
        logger.info("vhost-user: frontend gone: \(reason)")
        setState(.disconnected(reason))
    }

    private func setState(_ state: FrontendState) {
        let waiters = status.withLock { s -> [@Sendable (FrontendState) -> Void] in
            s.state = state
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0(state) }
    }
}
