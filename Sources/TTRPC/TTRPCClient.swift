// The ttrpc client: one connection, many concurrent calls multiplexed by odd stream ids.
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization

/// Told of every typed call when it ends: the request's message name (without its package, as
/// Kata's metrics name agent calls), how long it took, and whether it failed.
public typealias TTRPCCallObserver = @Sendable (_ requestName: String, _ duration: Duration, _ failed: Bool) -> Void

/// A connection to a ttrpc server. Calls may run concurrently; each fails with
/// `unavailable` if the connection drops before its response arrives.
public final class TTRPCClient: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<ClientConnectionHandler>
    private let observer: TTRPCCallObserver?
    /// The next stream id: odd, from 1 (client-initiated streams are odd).
    private let nextStreamID = Mutex<UInt32>(1)

    private init(channel: any Channel, handler: NIOLoopBound<ClientConnectionHandler>, observer: TTRPCCallObserver? = nil) {
        self.channel = channel
        self.handler = handler
        self.observer = observer
    }

    /// A client dropped without `close()` still closes its connection.
    deinit {
        channel.close(promise: nil)
    }

    /// Connects to the Unix socket at `path`.
    public static func connect(
        unixSocketPath path: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> TTRPCClient {
        do {
            let (channel, handler) = try await ClientBootstrap(group: group)
                .connect(unixDomainSocketPath: path) { channel in initialize(channel) }
            return TTRPCClient(channel: channel, handler: handler)
        } catch {
            throw TTRPCError(.unavailable, "connect to \(path): \(error)")
        }
    }

    /// Uses `descriptor`, an already-connected stream socket (e.g. vsock). The client owns it from now on.
    /// `observer` hears of every typed call's end.
    public static func connect(
        connectedDescriptor descriptor: CInt, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        observer: TTRPCCallObserver? = nil
    ) async throws -> TTRPCClient {
        do {
            let (channel, handler) = try await ClientBootstrap(group: group)
                .withConnectedSocket(descriptor) { channel in initialize(channel) }
            return TTRPCClient(channel: channel, handler: handler, observer: observer)
        } catch {
            throw TTRPCError(.unavailable, "connect on fd \(descriptor): \(error)")
        }
    }

    private static func initialize(
        _ channel: any Channel
    ) -> EventLoopFuture<(any Channel, NIOLoopBound<ClientConnectionHandler>)> {
        channel.eventLoop.makeCompletedFuture {
            let handler = ClientConnectionHandler()
            try channel.pipeline.syncOperations.addHandlers(
                ByteToMessageHandler(FrameDecoder()), MessageToByteHandler(FrameEncoder()), handler)
            return (channel, NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }
    }

    /// Calls `service`/`method` with a raw payload and returns the raw response payload.
    /// Throws `TTRPCError`: the server's status, `deadlineExceeded` past `options.timeout`,
    /// `cancelled` when the calling task is cancelled, `unavailable` when the connection drops.
    public func call(
        service: String, method: String, payload: [UInt8], options: TTRPCCallOptions = TTRPCCallOptions()
    ) async throws -> [UInt8] {
        let request: [UInt8]
        do {
            request = try Ttrpc_Request(service: service, method: method, payload: payload, options: options)
                .serializedBytes()
        } catch {
            throw TTRPCError(.internal, "\(service)/\(method): cannot encode request: \(error)")
        }
        let streamID = allocateStreamID()
        let promise = channel.eventLoop.makePromise(of: [UInt8].self)
        let handler = self.handler
        return try await withTaskCancellationHandler {
            handler.eventLoop.execute {
                handler.value.start(streamID, request: request, timeout: options.timeout, promise: promise)
            }
            if Task.isCancelled {  // cancelled before the handler below could be installed
                handler.eventLoop.execute { handler.value.cancel(streamID) }
            }
            return try await promise.futureResult.get()
        } onCancel: {
            handler.eventLoop.execute { handler.value.cancel(streamID) }
        }
    }

    /// Calls `service`/`method` with a typed request and decodes the typed response.
    public func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        service: String, method: String, request: Request, options: TTRPCCallOptions = TTRPCCallOptions(),
        responseType: Response.Type = Response.self
    ) async throws -> Response {
        let payload: [UInt8]
        do {
            payload = try request.serializedBytes()
        } catch {
            throw TTRPCError(.internal, "\(service)/\(method): cannot encode \(Request.protoMessageName): \(error)")
        }
        let reply: [UInt8]
        if let observer {
            let started = ContinuousClock.now
            do {
                reply = try await call(service: service, method: method, payload: payload, options: options)
            } catch {
                observer(Self.shortName(Request.protoMessageName), ContinuousClock.now - started, true)
                throw error
            }
            observer(Self.shortName(Request.protoMessageName), ContinuousClock.now - started, false)
        } else {
            reply = try await call(service: service, method: method, payload: payload, options: options)
        }
        do {
            return try Response(serializedBytes: reply)
        } catch {
            throw TTRPCError(.internal, "\(service)/\(method): cannot decode \(Response.protoMessageName): \(error)")
        }
    }

    /// True until the connection closes (either side).
    public var isActive: Bool {
        channel.isActive
    }

    /// Returns once the connection has closed, from either side.
    public func waitUntilClosed() async {
        try? await channel.closeFuture.get()
    }

    /// Closes the connection; pending calls fail with `unavailable`.
    public func close() async {
        try? await channel.close()
    }

    /// "kata.agent.v1.CreateContainerRequest" -> "CreateContainerRequest".
    static func shortName(_ messageName: String) -> String {
        messageName.split(separator: ".").last.map(String.init) ?? messageName
    }

    private func allocateStreamID() -> UInt32 {
        nextStreamID.withLock { next in
            let id = next
            next = next == UInt32.max ? 1 : next &+ 2
            return id
        }
    }
}
