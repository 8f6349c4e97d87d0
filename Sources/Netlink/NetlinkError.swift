// The Netlink module's one error type: a system call failed, the kernel refused a request, a
// reply did not decode, or the caller asked for something impossible.
import SystemSupport

public enum NetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A socket call failed (socket, send, recv, setns, open of a namespace path).
    case system(operation: String, errno: Errno)
    /// The kernel answered NLMSG_ERROR: `errno` with its extended-ack text, if it gave one.
    case kernel(operation: String, errno: Errno, message: String?)
    /// A reply from the kernel did not decode: lengths out of bounds, attributes too short.
    case malformed(String)
    /// A link, address or route the caller named does not exist.
    case notFound(String)
    /// The caller's argument cannot be encoded (a name too long, an address of the wrong family).
    case invalidArgument(String)

    /// The errno behind a system or kernel error, for callers that map errors to their own codes.
    public var errno: Errno? {
        switch self {
        case .system(_, let e), .kernel(_, let e, _): e
        case .malformed, .notFound, .invalidArgument: nil
        }
    }

    public var description: String {
        switch self {
        case .system(let op, let e): "\(op): \(e)"
        case .kernel(let op, let e, let message):
            if let message, !message.isEmpty { "\(op): \(e): \(message)" } else { "\(op): \(e)" }
        case .malformed(let what): "malformed netlink message: \(what)"
        case .notFound(let what): "\(what) not found"
        case .invalidArgument(let what): what
        }
    }
}
