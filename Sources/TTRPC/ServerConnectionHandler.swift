// One server connection: reads request frames, runs each call in its own task,
// answers each as it completes (so a blocked call never stalls the others).
// All state lives on the channel's event loop; call tasks hop back to it to answer.
import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

package final class ServerConnectionHandler: ChannelInboundHandler {
    package typealias InboundIn = InboundFrame
    package typealias OutboundOut = OutboundFrame

    private struct Call {
        var task: Task<Void, Never>
        var deadlineTimer: Scheduled<Void>?
    }

    private let registry: ServiceRegistry
    private let calls: CallCounter
    /// Calls running now, by stream id; guarded by the event loop.
    private var inFlight: [UInt32: Call] = [:]
    private var context: ChannelHandlerContext?

    package init(registry: ServiceRegistry, calls: CallCounter) {
        self.registry = registry
        self.calls = calls
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        cancelAll()
        self.context = nil
    }

    package func channelInactive(context: ChannelHandlerContext) {
        cancelAll()
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Decoder and socket errors end the connection; calls in flight are cancelled on inactive.
        context.close(promise: nil)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .oversized(let header):
            guard header.type == FrameType.request.rawValue else { return }
            answer(
                header.streamID,
                .failure(TTRPCError(.resourceExhausted, "message length \(header.length) exceeds maximum message size of \(FrameHeader.maxPayload)")))
        case .frame(let header, let payload):
            // Frames other than requests are ignored, as ttrpc does.
            guard header.type == FrameType.request.rawValue else { return }
            receive(header.streamID, payload: payload, context: context)
        }
    }

    private func receive(_ streamID: UInt32, payload: ByteBuffer, context: ChannelHandlerContext) {
        guard streamID % 2 == 1 else {
            answer(streamID, .failure(TTRPCError(.invalidArgument, "StreamID must be odd for client initiated streams")))
            return
        }
        guard inFlight[streamID] == nil else {
            answer(streamID, .failure(TTRPCError(.invalidArgument, "stream \(streamID) is already in use")))
            return
        }
        let request: Ttrpc_Request
        do {
            request = try Ttrpc_Request(serializedBytes: Array(payload.readableBytesView))
        } catch {
            answer(streamID, .failure(TTRPCError(.invalidArgument, "cannot decode request: \(error)")))
            return
        }
        let handler: TTRPCMethodHandler
        switch registry.lookup(service: request.service, method: request.method) {
        case .success(let found):
            handler = found
        case .failure(let error):
            answer(streamID, .failure(error))
            return
        }
        start(streamID, request: request, handler: handler, eventLoop: context.eventLoop)
    }

    private func start(_ streamID: UInt32, request: Ttrpc_Request, handler: @escaping TTRPCMethodHandler, eventLoop: any EventLoop) {
        let timeout: Duration? = request.timeoutNano > 0 ? .nanoseconds(request.timeoutNano) : nil
        let callContext = TTRPCCallContext(
            service: request.service, method: request.method,
            metadata: TTRPCMetadata(wire: request.metadata),
            deadline: timeout.map { ContinuousClock.now + $0 })
        let payload = [UInt8](request.payload)
        let connection = NIOLoopBound(self, eventLoop: eventLoop)
        calls.begin()
        let task = Task {
            let result: Result<[UInt8], TTRPCError>
            do {
                result = .success(try await handler(payload, callContext))
            } catch {
                result = .failure(TTRPCError(answering: error))
            }
            connection.eventLoop.execute {
                connection.value.finish(streamID, result)
            }
        }
        var call = Call(task: task)
        if let timeout {
            call.deadlineTimer = eventLoop.scheduleTask(in: .nanoseconds(timeout.wholeNanoseconds)) {
                connection.value.finish(streamID, .failure(TTRPCError(.deadlineExceeded, "deadline exceeded")))
            }
        }
        inFlight[streamID] = call
    }

    /// Answers a call once: whichever of its handler and its deadline comes first.
    private func finish(_ streamID: UInt32, _ result: Result<[UInt8], TTRPCError>) {
        guard let call = inFlight.removeValue(forKey: streamID) else { return }
        call.deadlineTimer?.cancel()
        call.task.cancel()
        calls.end()
        answer(streamID, result)
    }

    private func answer(_ streamID: UInt32, _ result: Result<[UInt8], TTRPCError>) {
        guard let context, context.channel.isActive else { return }
        let frame = OutboundFrame(streamID: streamID, type: .response, payload: Ttrpc_Response.encoded(result))
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    private func cancelAll() {
        for call in inFlight.values {
            call.deadlineTimer?.cancel()
            call.task.cancel()
            calls.end()
        }
        inFlight.removeAll()
    }
}
