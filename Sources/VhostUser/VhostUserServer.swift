import CSupport
import Glibc
import GuestMemory
import Logging
import Synchronization
import SystemSupport
import VirtIO

/// Errors of setting up the vhost-user socket server.
public enum VhostUserServerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Listening on the socket path failed.
    case listen(path: String, Errno)
    /// The epoll set or its eventfds could not be made.
    case eventLoop(Errno)
    /// The server thread could not be started.
    case thread(Errno)

    public var description: String {
        switch self {
        case .listen(let path, let e): "vhost-user: listen on \(path): \(e)"
        case .eventLoop(let e): "vhost-user: event loop: \(e)"
        case .thread(let e): "vhost-user: server thread: \(e)"
        }
    }
}

/// Serves one of our `VirtioDevice` models (vsock, fs, ...) to a vhost-user frontend (QEMU) on a
/// Unix socket.
///
/// One thread runs everything the device does: it accepts the frontend, reads each message with
/// its SCM_RIGHTS fds, hands it to a `VhostUserSession` (the codec and state machine), sends the
/// reply, watches the kick eventfds and runs the device's queues when they fire, and runs
/// `backendWork` after `wake()` (vsock: the muxer has packets for the guest). So the device is only
/// ever touched from this thread. One frontend at a time; when it goes away the device is reset and
/// the server waits for the next one. `stop()` ends the thread (it must be called: the thread
/// keeps the server alive).
public final class VhostUserServer: @unchecked Sendable {
    // SAFETY (Sendable): `device` and `backendWork` are the only non-Sendable members; after init
    // they are touched only by the server thread (run and what it calls). The rest is immutable
    // or locked.
    enum Token: RawRepresentable, Sendable {
        case listener, frontend, wake, backend, kick(Int)
        static let maxQueues = 64
        init?(rawValue: UInt64) {
            switch rawValue {
            case 1: self = .listener
            case 2: self = .frontend
            case 3: self = .wake
            case 5: self = .backend
            case 100..<(100 + UInt64(Self.maxQueues)): self = .kick(Int(rawValue - 100))
            default: return nil
            }
        }
        var rawValue: UInt64 {
            switch self {
            case .listener: 1
            case .frontend: 2
            case .wake: 3
            case .backend: 5
            case .kick(let q): 100 + UInt64(q)
            }
        }
    }

    /// What the frontend connection has done so far.
    public enum FrontendState: Equatable, Sendable {
        case waiting
        case connected
        /// The frontend hung up or broke the protocol.
        case disconnected(String)
    }

    public let path: String
    /// Queues served over vhost-user (vsock: rx and tx; fs: hiprio and the request queues).
    public let queueCount: Int
    private let device: any VirtioDevice
    private let backendWork: (() -> Void)?
    private let listener: FileDescriptor
    /// The server thread's loop, built here, before the thread loads its seccomp filter.
    private let events: EventManager<Token>
    private let wakeEvent: EventFD
    private let logger: Logger
    private let status = Mutex<(state: FrontendState, messages: Int, active: Bool, waiters: [@Sendable (FrontendState) -> Void])>(
        (.waiting, 0, false, []))
    private let thread: Mutex<WorkerThread?> = Mutex(nil)

    /// Listens on `path` (replacing a stale socket file) and starts the server thread.
    /// `backendWork` runs on that thread after `wake()`, while the device is active.
    /// `threadSetup` runs first on that thread, before its seccomp filter (the virtio-fs server
    /// pivots into its share there); if it throws, the thread serves nothing.
    public init(
        path: String, device: any VirtioDevice, queueCount: Int, backendWork: (() -> Void)? = nil,
        backendDescriptor: FileDescriptor? = nil, logger: Logger = Logger(label: "kata-swift.vhost-user"),
        threadSetup: (@Sendable () throws -> Void)? = nil
    ) throws(VhostUserServerError) {
        precondition((1...Token.maxQueues).contains(queueCount), "vhost-user: queue count \(queueCount)")
        self.path = path
        self.device = device
        self.queueCount = queueCount
        self.backendWork = backendWork
        self.logger = logger
        do throws(Errno) {
            var st = stat()
            if lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
            listener = FileDescriptor(owning: try shimResult(ks_unix_listen(path, 1, 0, 0)))
        } catch {
            throw .listen(path: path, error)
        }
        do throws(Errno) {
            events = try EventManager()
            wakeEvent = try EventFD()
            try events.add(listener, token: .listener)
            try events.add(wakeEvent.fd, token: .wake)
            // Edge-triggered: what the device leaves unread (no guest buffers) does not spin the
            // loop; the guest's next kick picks it up.
            if let backendDescriptor {
                try events.add(backendDescriptor, events: [.readable, .edgeTriggered], token: .backend)
            }
        } catch {
            unlink(path)
            throw .eventLoop(error)
        }
        do throws(Errno) {
            // The thread serves guest-controlled rings: it loads the device policy first, and
            // never serves unfiltered (QEMU then times out waiting for us, and says so).
            let worker = try WorkerThread(name: "vhost-user") { [self] in
                do {
                    try threadSetup?()
                } catch {
                    logger.error("vhost-user: cannot confine the server thread: \(error)")
                    return
                }
                do throws(Errno) {
                    try ThreadConfinement.device.install()
                } catch {
                    logger.error("vhost-user: cannot load the thread's seccomp filter: \(error)")
                    return
                }
                run()
            }
            thread.withLock { $0 = worker }
        } catch {
            unlink(path)
            throw .thread(error)
        }
    }

    public var frontendState: FrontendState { status.withLock { $0.state } }
    /// Messages handled since the server started (for tests and debugging).
    public var messagesHandled: Int { status.withLock { $0.messages } }
    /// Whether the device is running (every ring started and enabled, memory mapped).
    public var isActive: Bool { status.withLock { $0.active } }

    /// Calls `body` once the frontend state leaves `.waiting` (at once if it already has).
    public func onFrontendChange(_ body: @escaping @Sendable (FrontendState) -> Void) {
        let now = status.withLock { s -> FrontendState? in
            if s.state != .waiting { return s.state }
            s.waiters.append(body)
            return nil
        }
        if let now { body(now) }
    }

    /// The backend has work: run `backendWork` on the server thread. Any thread.
    public func wake() { try? wakeEvent.signal() }

    /// Stops and joins the thread, drops the frontend (its fds closed, the device reset), removes
    /// the socket file. Idempotent.
    public func stop() {
        events.stop()
        let worker = thread.withLock { $0 }
        if let worker, !worker.isCurrent { worker.join() }
        unlink(path)
    }

    // MARK: the server thread

    private final class Connection {
        let socket: FileDescriptor
        let session: VhostUserSession
        let platform: SystemVhostUserPlatform
        var decoder = VhostUserDecoder()
        var watchedKicks: [Int: Int32] = [:]
        init(socket: FileDescriptor, session: VhostUserSession, platform: SystemVhostUserPlatform) {
            self.socket = socket
            self.session = session
            self.platform = platform
        }
    }

    private func run() {
        var connection: Connection?
        do {
            try events.run(maxEvents: 32) { token, _ in
                switch token {
                case .listener:
                    acceptFrontend(&connection)
                case .frontend:
                    guard let c = connection else { return }
                    if let reason = serviceFrontend(c) { drop(&connection, reason: reason) }
                case .kick(let queue):
                    guard let c = connection, let fd = c.watchedKicks[queue] else { return }
                    var value: UInt64 = 0
                    _ = Glibc.read(fd, &value, 8)
                    c.session.kick(queue: queue)
                    rearm(c)
                case .wake, .backend:
                    if token == .wake { _ = try? wakeEvent.consume() }
                    if let c = connection, c.session.isActive, let backendWork {
                        backendWork()
                        rearm(c)
                    }
                }
            } afterBatch: {
                status.withLock { $0.active = connection?.session.isActive ?? false }
            }
        } catch {
            logger.error("vhost-user: epoll_wait: \(error)")
        }
        if connection != nil { drop(&connection, reason: "server stopped") }
    }

    private func acceptFrontend(_ connection: inout Connection?) {
        let fd = ks_unix_accept(listener.rawValue, 0)
        guard fd >= 0 else { return }
        let socket = FileDescriptor(owning: fd)
        guard connection == nil else {
            logger.warning("vhost-user: refusing a second frontend on \(path)")
            return
        }
        do {
            try events.add(socket, token: .frontend)
        } catch {
            logger.error("vhost-user: watching the frontend: \(error)")
            return
        }
        let platform = SystemVhostUserPlatform()
        let session = VhostUserSession(device: device, queueCount: queueCount, platform: platform, logger: logger)
        connection = Connection(socket: socket, session: session, platform: platform)
        setState(.connected)
    }

    /// Reads and handles one message; returns why the connection must be dropped, if it must.
    private func serviceFrontend(_ c: Connection) -> String? {
        var header = [UInt8](repeating: 0, count: VhostUserMessage.headerSize)
        var fds = [Int32](repeating: -1, count: 8)
        var fdCount: Int32 = 0
        let n = header.withUnsafeMutableBytes {
            ks_unix_recv_with_fds(c.socket.rawValue, $0.baseAddress, $0.count, &fds, 8, &fdCount)
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
            if let reply, let error = sendAll(reply.bytes, to: c.socket) {
                return "replying to the frontend: \(error)"
            }
            syncKicks(c)
            if c.session.isActive, message.knownRequest == .setVringCall, received.count == 1 {
                // QEMU swaps call fds when it unmasks the guest notifier; a used-buffer
                // interrupt sent to the old fd in between is lost. A spurious one is harmless.
                EventFDLine(fd: received[0]).signal()
            }
            if !wasActive, c.session.isActive {
                logger.debug("vhost-user: device started")
                // Kicks that came before the device started were consumed without effect, and the
                // backend may already have work (a host vsock connect during boot): run the queues.
                for queue in 0..<queueCount { c.session.kick(queue: queue) }
                backendWork?()
                rearm(c)
            }
            return nil
        } catch let error as VhostUserError {
            return fail("frontend broke the framing: \(error)")
        } catch {
            return fail("frontend I/O: \(error)")
        }
    }

    /// Sends all of `bytes` on the blocking frontend socket; the error, if any.
    private func sendAll(_ bytes: [UInt8], to socket: FileDescriptor) -> Errno? {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { ks_unix_send(socket.rawValue, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { return Errno(rawValue: Int32(-n)) }
            offset += n
        }
        return nil
    }

    /// With EVENT_IDX the driver kicks only when avail.idx passes the device's avail_event, which
    /// device models do not publish themselves: publish it after every round of work, and go
    /// round again while that finds buffers the device then consumes, or the guest stops kicking
    /// (a request that arrives between the device's last pop and the publication would wait
    /// forever). Buffers the device leaves waiting (vsock RX with nothing to deliver) end the
    /// loop: avail_event already covers them. Without EVENT_IDX this clears
    /// VIRTQ_USED_F_NO_NOTIFY, which is also what we want.
    private func rearm(_ c: Connection) {
        guard c.session.isActive, let memory = c.platform.memory else { return }
        var pending = Array(0..<queueCount)
        while !pending.isEmpty {
            var again: [Int] = []
            for queue in pending {
                guard (try? device.queues[queue].setNotifications(enabled: true, memory: memory)) == true else { continue }
                let before = device.queues[queue].nextAvailable
                c.session.kick(queue: queue)
                if device.queues[queue].nextAvailable != before { again.append(queue) }
            }
            pending = again
        }
    }

    /// Watches exactly the session's current kick fds (re-adding after any change, as a closed
    /// fd silently leaves epoll and its number may come back).
    private func syncKicks(_ c: Connection) {
        for queue in 0..<queueCount {
            let current = c.session.kickFD(ofQueue: queue)
            if current == c.watchedKicks[queue], current == nil { continue }
            if let old = c.watchedKicks[queue] {
                try? events.remove(rawDescriptor: old)
            }
            c.watchedKicks[queue] = nil
            if let fd = current, (try? events.add(rawDescriptor: fd, token: .kick(queue))) != nil {
                c.watchedKicks[queue] = fd
            }
        }
    }

    private func drop(_ connection: inout Connection?, reason: String) {
        guard let c = connection else { return }
        for fd in c.watchedKicks.values { try? events.remove(rawDescriptor: fd) }
        try? events.remove(c.socket)
        c.session.disconnect()
        connection = nil
        status.withLock { $0.active = false }
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
