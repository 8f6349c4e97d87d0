// A service: a name and its method table, built by generated code (or by hand in tests).
import SwiftProtobuf

/// One method: the serialized request in, the serialized response out.
public typealias TTRPCMethodHandler =
    @Sendable (_ payload: [UInt8], _ context: TTRPCCallContext) async throws -> [UInt8]

/// A named set of methods that a `TTRPCServer` serves.
public struct TTRPCService: Sendable {
    /// Fully qualified, e.g. `containerd.task.v2.Task`.
    public let name: String
    public private(set) var methods: [String: TTRPCMethodHandler] = [:]

    public init(name: String) {
        self.name = name
    }

    /// Adds a method on raw payloads.
    public mutating func addMethod(_ method: String, _ handler: @escaping TTRPCMethodHandler) {
        methods[method] = handler
    }

    /// Adds a typed method: the payload is decoded as `Request` (a payload that does not
    /// decode is answered `invalidArgument`) and the returned `Response` is serialized.
    public mutating func addMethod<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: String,
        _ body: @escaping @Sendable (Request, TTRPCCallContext) async throws -> Response
    ) {
        methods[method] = { payload, context in
            let request: Request
            do {
                request = try Request(serializedBytes: payload)
            } catch {
                throw TTRPCError(.invalidArgument, "\(context.service)/\(context.method): cannot decode \(Request.protoMessageName): \(error)")
            }
            let response = try await body(request, context)
            do {
                return try response.serializedBytes()
            } catch {
                throw TTRPCError(.internal, "\(context.service)/\(context.method): cannot encode \(Response.protoMessageName): \(error)")
            }
        }
    }
}
