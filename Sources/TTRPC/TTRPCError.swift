// The one error type of the ttrpc layer: a status code and a message.
// Handlers throw it; the server maps it to google.rpc.Status once, at the wire.

/// A ttrpc status code, numbered as gRPC's (google.rpc.Code).
/// A struct rather than an enum so that a code we do not know survives a round trip.
public struct TTRPCStatusCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    public static let ok = TTRPCStatusCode(rawValue: 0)
    public static let cancelled = TTRPCStatusCode(rawValue: 1)
    public static let unknown = TTRPCStatusCode(rawValue: 2)
    public static let invalidArgument = TTRPCStatusCode(rawValue: 3)
    public static let deadlineExceeded = TTRPCStatusCode(rawValue: 4)
    public static let notFound = TTRPCStatusCode(rawValue: 5)
    public static let alreadyExists = TTRPCStatusCode(rawValue: 6)
    public static let permissionDenied = TTRPCStatusCode(rawValue: 7)
    public static let resourceExhausted = TTRPCStatusCode(rawValue: 8)
    public static let failedPrecondition = TTRPCStatusCode(rawValue: 9)
    public static let aborted = TTRPCStatusCode(rawValue: 10)
    public static let outOfRange = TTRPCStatusCode(rawValue: 11)
    public static let unimplemented = TTRPCStatusCode(rawValue: 12)
    public static let `internal` = TTRPCStatusCode(rawValue: 13)
    public static let unavailable = TTRPCStatusCode(rawValue: 14)
    public static let dataLoss = TTRPCStatusCode(rawValue: 15)
    public static let unauthenticated = TTRPCStatusCode(rawValue: 16)

    /// Every code gRPC defines, in numeric order.
    public static let allKnown: [TTRPCStatusCode] = (0...16).map { TTRPCStatusCode(rawValue: $0) }

    public var description: String {
        let names = [
            "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
            "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
            "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
        ]
        return names.indices.contains(Int(rawValue)) ? names[Int(rawValue)] : "Code(\(rawValue))"
    }
}

/// An error carried over ttrpc. Thrown by handlers (the server sends it as the call's status)
/// and by clients (a status received from the peer, or a local failure such as a closed connection).
public struct TTRPCError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: TTRPCStatusCode
    public var message: String

    public init(_ code: TTRPCStatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String {
        "ttrpc: \(code): \(message)"
    }
}

extension TTRPCError {
    /// The status to send for any error a handler threw: a `TTRPCError` keeps its code,
    /// a Swift cancellation becomes `cancelled`, anything else `unknown` with its description.
    init(answering error: any Error) {
        switch error {
        case let error as TTRPCError:
            self = error
        case is CancellationError:
            self.init(.cancelled, "call cancelled")
        default:
            self.init(.unknown, String(describing: error))
        }
    }
}
