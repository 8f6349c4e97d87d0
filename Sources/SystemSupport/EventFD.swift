import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// An eventfd counter: a cross-thread wakeup that epoll can wait on.
public final class EventFD: Sendable {
    public let fd: FileDescriptor

    public init(initialValue: UInt32 = 0, nonBlocking: Bool = true) throws(Errno) {
        fd = FileDescriptor(owning: try shimResult(ks_eventfd(initialValue, nonBlocking ? 1 : 0)))
    }

    /// Adds `value` to the counter, waking any waiter.
    public func signal(_ value: UInt64 = 1) throws(Errno) {
        var v = value
        _ = try retryingSyscall { Glibc.write(fd.rawValue, &v, 8) }
    }

    /// Reads and resets the counter; nil when it is zero (non-blocking mode).
    public func consume() throws(Errno) -> UInt64? {
        var v: UInt64 = 0
        do {
            _ = try retryingSyscall { Glibc.read(fd.rawValue, &v, 8) }
        } catch .wouldBlock {
            return nil
        }
        return v
    }
}

/// epoll event bits (sys/epoll.h values; the enum there is not imported).
public struct EpollEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = EpollEvents(rawValue: 0x001)
    public static let writable = EpollEvents(rawValue: 0x004)
    public static let error = EpollEvents(rawValue: 0x008)
    public static let hangup = EpollEvents(rawValue: 0x010)
    /// EPOLLET: report only new readiness, not readiness left over from before.
    public static let edgeTriggered = EpollEvents(rawValue: 1 << 31)
}

/// An epoll instance whose registrations carry a typed token.
public final class Epoll<Token: RawRepresentable & Sendable>: Sendable where Token.RawValue == UInt64 {
    public let fd: FileDescriptor

    public init() throws(Errno) {
        fd = FileDescriptor(owning: try shimResult(ks_epoll_create()))
    }

    public func add(_ target: FileDescriptor, events: EpollEvents, token: Token) throws(Errno) {
        _ = try shimResult(ks_epoll_ctl(fd.rawValue, 1 /* EPOLL_CTL_ADD */, target.rawValue, events.rawValue, token.rawValue))
    }

    public func remove(_ target: FileDescriptor) throws(Errno) {
        _ = try shimResult(ks_epoll_ctl(fd.rawValue, 2 /* EPOLL_CTL_DEL */, target.rawValue, 0, 0))
    }

    /// Waits up to `timeoutMs` (-1: forever). EINTR returns an empty list. Unknown tokens are dropped.
    public func wait(max: Int = 16, timeoutMs: Int32 = -1) throws(Errno) -> [(token: Token, events: EpollEvents)] {
        let capacity = Swift.max(1, Swift.min(max, 256))
        var events = [UInt32](repeating: 0, count: capacity)
        var tokens = [UInt64](repeating: 0, count: capacity)
        let n = ks_epoll_wait(fd.rawValue, &events, &tokens, Int32(capacity), timeoutMs)
        if n == -EINTR { return [] }
        let count = try shimResult(n)
        return (0..<Int(count)).compactMap { i in
            Token(rawValue: tokens[i]).map { ($0, EpollEvents(rawValue: events[i])) }
        }
    }
}
