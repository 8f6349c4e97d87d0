// What a handler learns about its call, and what a caller can say about one.

/// The server-side view of one call, handed to every handler.
public struct TTRPCCallContext: Sendable {
    /// Fully qualified service name, e.g. `containerd.task.v2.Task`.
    public let service: String
    /// Bare method name, e.g. `Create`.
    public let method: String
    public let metadata: TTRPCMetadata
    /// When the caller gives up (from the request's `timeout_nano`); nil when it sent none.
    /// Past it the server answers `deadlineExceeded` and cancels the handler's task.
    public let deadline: ContinuousClock.Instant?

    public init(service: String, method: String, metadata: TTRPCMetadata, deadline: ContinuousClock.Instant?) {
        self.service = service
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
    }
}

/// Per-call options of a client.
public struct TTRPCCallOptions: Sendable {
    /// Fails the call with `deadlineExceeded` after this long; also sent to the server as `timeout_nano`.
    public var timeout: Duration?
    public var metadata: TTRPCMetadata

    public init(timeout: Duration? = nil, metadata: TTRPCMetadata = TTRPCMetadata()) {
        self.timeout = timeout
        self.metadata = metadata
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at Int64's range.
    var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow {
            return seconds < 0 ? .min : .max
        }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? (seconds < 0 ? .min : .max) : sum
    }
}
