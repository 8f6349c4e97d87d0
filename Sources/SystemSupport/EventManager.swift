import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// One thread's event loop, in the way of Firecracker's event manager and crosvm's WaitContext:
/// descriptors are registered with a typed token, and `run` hands every ready (token, events)
/// to the loop's handler until `stop()` fires the loop's own stop eventfd.
///
/// The epoll instance and the stop eventfd are made in `init`, on the thread that builds the
/// loop: a thread under a VMM seccomp filter (`ThreadConfinement`) may call epoll_ctl,
/// epoll_wait and eventfd2 but not epoll_create1 (only the device thread may), so a loop must
/// exist before the thread that runs it loads its filter. `add`, `remove`, `run` and `stop` are
/// allowed under every filter. Any thread may register, unregister or stop.
public final class EventManager<Token: RawRepresentable & Sendable>: Sendable where Token.RawValue == UInt64 {
    /// What epoll carries: the stop eventfd or one of the loop's tokens.
    enum Registered: RawRepresentable, Sendable {
        case stop
        case token(Token)

        /// The stop eventfd's epoll data; no token may use it.
        static var stopValue: UInt64 { .max }

        init?(rawValue: UInt64) {
            if rawValue == Self.stopValue {
                self = .stop
            } else if let token = Token(rawValue: rawValue) {
                self = .token(token)
            } else {
                return nil
            }
        }

        var rawValue: UInt64 {
            switch self {
            case .stop: Self.stopValue
            case .token(let token): token.rawValue
            }
        }
    }

    private let epoll: Epoll<Registered>
    private let stopEvent: EventFD

    public init() throws(Errno) {
        epoll = try Epoll()
        stopEvent = try EventFD()
        try epoll.add(stopEvent.fd, events: .readable, token: .stop)
    }

    /// Watches `descriptor` for `events`; each readiness is handed to the handler with `token`.
    public func add(_ descriptor: FileDescriptor, events: EpollEvents = .readable, token: Token) throws(Errno) {
        try add(rawDescriptor: descriptor.rawValue, events: events, token: token)
    }

    /// `add` for a descriptor owned elsewhere (a vhost-user frontend's kick eventfd).
    public func add(rawDescriptor: Int32, events: EpollEvents = .readable, token: Token) throws(Errno) {
        precondition(token.rawValue != Registered.stopValue, "event manager: token value \(UInt64.max) is the stop eventfd's")
        _ = try shimResult(ks_epoll_ctl(epoll.fd.rawValue, 1 /* EPOLL_CTL_ADD */, rawDescriptor, events.rawValue, token.rawValue))
    }

    /// Stops watching `descriptor` (before it is closed: a closed descriptor leaves epoll
    /// silently, and its number may come back).
    public func remove(_ descriptor: FileDescriptor) throws(Errno) {
        try remove(rawDescriptor: descriptor.rawValue)
    }

    public func remove(rawDescriptor: Int32) throws(Errno) {
        _ = try shimResult(ks_epoll_ctl(epoll.fd.rawValue, 2 /* EPOLL_CTL_DEL */, rawDescriptor, 0, 0))
    }

    /// Asks `run` to return (now, or at once if it has not begun). Any thread, without waiting;
    /// idempotent and final: the stop eventfd stays set.
    public func stop() {
        try? stopEvent.signal()
    }

    /// Waits for events and hands each to `handle` in the order epoll reports them, then calls
    /// `afterBatch`; returns when the stop eventfd fires (at once: the rest of that batch and its
    /// `afterBatch` are skipped). An interrupted wait is retried; a failing one throws.
    public func run(
        maxEvents: Int = 32, _ handle: (Token, EpollEvents) -> Void, afterBatch: () -> Void = {}
    ) throws(Errno) {
        while true {
            for (registered, events) in try epoll.wait(max: maxEvents, timeoutMs: -1) {
                switch registered {
                case .stop: return
                case .token(let token): handle(token, events)
                }
            }
            afterBatch()
        }
    }
}
