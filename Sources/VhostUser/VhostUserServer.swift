import CShims
import Glibc
import GuestMemory
import Logging
import Synchronization
import VirtIO

/// The real host side of a session: mmap'd memfds, eventfd interrupt lines, `close(2)`.
public final class SystemVhostUserPlatform: VhostUserPlatform {
    public init() {}

    public func mapMemory(_ regions: [VhostUserMemoryRegion], fds: [Int32]) throws -> any GuestMemory {
        try MappedGuestMemory(regions, fds: fds)
    }

    public func interruptLine(fd: Int32) -> any InterruptLine { EventFDLine(fd: fd) }

    public func close(fd: Int32) { _ = Glibc.close(fd) }
}

/// Signals an eventfd (a vhost-user call or err fd). The session keeps the fd open while the
/// line is installed.
struct EventFDLine: InterruptLine {
    let fd: Int32
    func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
    }
}

/// Errors of the vhost-user socket server.
public enum VhostUserServerError: Error, Equatable, Sendable, CustomStringConvertible {
    case listen(path: String, errno: Int32)
    case eventfd(errno: Int32)

    public var description: String {
        switch self {
        case .listen(let p, let e): "vhost-user listen on \(p): errno \(e)"
        case .eventfd(let e): "vhost-user eventfd: errno \(e)"
        }
    }
}

/// Serves one `VhostUserSession` on a Unix socket: accepts one frontend, reads messages with
/// their fds, sends replies, and watches the rings' kick fds. `run()` blocks on its own thread;
/// all device work happens there. `wake()` (backend has packets) and `stop()` may be called
/// from any thread.
public final class VhostUserServer: @unchecked Sendable {
    // SAFETY (@unchecked): `session`, `backendWork` and `connection` are touched only by the
    // thread inside run(); other threads use the eventfd and the atomics.
    private let session: VhostUserSession
    private let backendWork: () -> Void
    private let listenFD: Int32
    private let wakeFD: Int32
    private let stopping = Atomic<Bool>(false)
    private let active = Atomic<Bool>(false)
    private var connection: Int32?
    private var decoder = VhostUserDecoder()
    private let logger: Logger
    public let path: String

    /// Listens on `path` (which must not exist). `backendWork` runs on the loop's thread after
    /// `wake()`, e.g. `vsockDevice.processBackend()`.
    public init(path: String, session: VhostUserSession, backendWork: @escaping () -> Void,
                logger: Logger = Logger(label: "kata-swift.vhost-user")) throws(VhostUserServerError) {
        let fd = ks_vu_listen(path)
        guard fd >= 0 else { throw .listen(path: path, errno: -fd) }
        let wake = ks_vu_eventfd()
        guard wake >= 0 else {
            Glibc.close(fd)
            throw .eventfd(errno: -wake)
        }
        self.path = path
        self.listenFD = fd
        self.wakeFD = wake
        self.session = session
        self.backendWork = backendWork
        self.logger = logger
    }

    deinit {
        Glibc.close(listenFD)
        Glibc.close(wakeFD)
        if let connection { Glibc.close(connection) }
        unlink(path)
    }

    /// Whether the device is running (all rings started and enabled).
    public var isActive: Bool { active.load(ordering: .sequentiallyConsistent) }

    /// The backend has work: run `backendWork` on the loop's thread.
    public func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wakeFD, $0.baseAddress, 8) }
    }

    /// Ends `run()`.
    public func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        wake()
    }

    /// Serves until `stop()` or until the frontend hangs up.
    public func run() {
        while !stopping.load(ordering: .sequentiallyConsistent) {
            var watched: [(fd: Int32, queue: Int?)] = [(wakeFD, nil), (connection ?? listenFD, nil)]
            for queue in 0..<session.queueCount {
                if let kick = session.kickFD(ofQueue: queue) { watched.append((kick, queue)) }
            }
            var polls = watched.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&polls, nfds_t(polls.count), 1000)
            if ready < 0 {
                if errno == EINTR { continue }
                logger.error("vhost-user poll: errno \(errno)")
                return
            }
            for (entry, result) in zip(watched, polls) where result.revents != 0 {
                if entry.fd == wakeFD {
                    drain(wakeFD)
                    if session.isActive { backendWork() }
                } else if let queue = entry.queue {
                    drain(entry.fd)
                    session.kick(queue: queue)
                } else if connection == nil {
                    let accepted = ks_vu_accept(listenFD)
                    if accepted >= 0 { connection = accepted }
                } else if !readMessages() {
                    return
                }
            }
            active.store(session.isActive, ordering: .sequentiallyConsistent)
        }
    }

    private func drain(_ fd: Int32) {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { read(fd, $0.baseAddress, 8) }
    }

    /// Reads one message (header, then exactly its payload, so the fds that travel with its
    /// first bytes are its own), handles it and sends the reply; false when the peer is gone.
    private func readMessages() -> Bool {
        guard let connection else { return false }
        var fds: [Int32] = []
        guard let header = receive(VhostUserMessage.headerSize, from: connection, fds: &fds) else {
            fds.forEach { _ = Glibc.close($0) }
            return false
        }
        decoder.append(header)
        let size = header[8..<12].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        if size > 0, size <= Int(VhostUserMessage.maxPayload) {
            guard let payload = receive(size, from: connection, fds: &fds) else {
                fds.forEach { _ = Glibc.close($0) }
                return false
            }
            decoder.append(payload)
        }
        let message: VhostUserMessage
        do {
            guard let next = try decoder.next() else { throw VhostUserError.payloadTooLarge(request: 0, size: UInt32(size)) }
            message = next
        } catch {
            logger.error("vhost-user: \(error); dropping the connection")
            fds.forEach { _ = Glibc.close($0) }
            return false
        }
        let reply: VhostUserMessage?
        do {
            reply = try session.handle(message, fds: fds)
        } catch {
            reply = session.reply(to: message, error: error)
        }
        guard let reply else { return true }
        let bytes = reply.bytes
        return bytes.withUnsafeBytes { ks_vu_send_all(connection, $0.baseAddress, $0.count) } >= 0
    }

    /// Exactly `count` bytes from the socket, collecting any fds; nil at end of stream or error.
    private func receive(_ count: Int, from socket: Int32, fds: inout [Int32]) -> [UInt8]? {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        var received = [Int32](repeating: -1, count: 16)
        while result.count < count {
            var fdCount: Int32 = 0
            let want = count - result.count
            let n = buffer.withUnsafeMutableBytes { bytes in
                received.withUnsafeMutableBufferPointer { ks_vu_recv(socket, bytes.baseAddress, want, $0.baseAddress, 16, &fdCount) }
            }
            fds += received.prefix(Int(fdCount))
            guard n > 0 else {
                if n < 0 { logger.error("vhost-user recv: errno \(-n)") }
                return nil
            }
            result += buffer.prefix(n)
        }
        return result
    }
}
