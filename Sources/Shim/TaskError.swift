// The one error type the task service speaks in. Module errors (bundle, mount, stdio, sandbox) carry
// their own operation-naming enums; `TaskError.from(_:)` classifies any of them, and the RPC layer
// turns the result into a ttrpc status exactly once (TaskRPCService).

/// An error of the task service with the containerd error class it belongs to.
public struct TaskError: Error, Equatable, CustomStringConvertible, Sendable {
    /// containerd's error classes (errdefs) the shim can answer with.
    public enum Code: Equatable, Sendable {
        case notFound, alreadyExists, failedPrecondition, invalidArgument, unimplemented, unavailable, unknown

        /// The ttrpc/gRPC status code (containerd errdefs/grpc.go).
        public var rpcCode: Int32 {
            switch self {
            case .invalidArgument: 3
            case .notFound: 5
            case .alreadyExists: 6
            case .failedPrecondition: 9
            case .unimplemented: 12
            case .unavailable: 14
            case .unknown: 2
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func notFound(_ message: String) -> TaskError { TaskError(.notFound, message) }
    public static func alreadyExists(_ message: String) -> TaskError { TaskError(.alreadyExists, message) }
    public static func failedPrecondition(_ message: String) -> TaskError { TaskError(.failedPrecondition, message) }
    public static func invalidArgument(_ message: String) -> TaskError { TaskError(.invalidArgument, message) }
    public static func unimplemented(_ message: String) -> TaskError { TaskError(.unimplemented, message) }

    /// Classifies any error thrown below the service boundary.
    public static func from(_ error: any Error) -> TaskError {
        switch error {
        case let error as TaskError: error
        case let error as ProcessStateError: TaskError(.failedPrecondition, error.description)
        case let error as CustomStringConvertible: TaskError(.unknown, error.description)
        default: TaskError(.unknown, String(describing: error))
        }
    }
}
