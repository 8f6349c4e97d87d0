// One client connection: sends request frames, matches responses to calls by stream id,
// times calls out, and fails every pending call when the connection drops.
// All state lives on the channel's event loop.
import NIOCore

package final class ClientConnectionHandler: ChannelInboundHandler {
    package typealias InboundIn = InboundFrame
    package typealias OutboundOut = OutboundFrame

    private struct Pending {
        var promise: EventLoopPromise<[UInt8]>
        var timer: Scheduled<Void>?
    }

    /// Calls waiting for their response, by stream id; guarded by the event loop.
    private var pending: [UInt32: Pending] = [:]
    private var context: ChannelHandlerContext?
    /// Set once the connection is gone; later calls fail with it at once.
    private var closedError: TTRPCError?

    package init() {}

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        failAll(TTRPCError(.unavailable, "ttrpc: connection closed"))
        self.context = nil
    }

    package func channelInactive(context: ChannelHandlerContext) {
        failAll(TTRPCError(.unavailable, "ttrpc: connection closed"))
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(TTRPCError(.unavailable, "ttrpc: connection failed: \(error)"))
        context.close(promise: nil)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .oversized(let header):
            guard header.type == FrameType.response.rawValue else { return }
            complete(
                header.streamID,
                .failure(TTRPCError(.resourceExhausted, "response length \(header.length) exceeds maximum message size of \(FrameHeader.maxPayload)")))
        case .frame(let header, let payload):
            guard header.type == FrameType.response.rawValue else { return }
            guard let response = try? Ttrpc_Response(serializedBytes: Array(payload.readableBytesView)) else {
                complete(header.streamID, .failure(TTRPCError(.internal, "ttrpc: cannot decode response")))
                return
            }
            complete(header.streamID, response.outcome)
        }
    }

    /// Sends a request frame and registers `promise` for its response.
    package func start(_ streamID: UInt32, request: [UInt8], timeout: Duration?, promise: EventLoopPromise<[UInt8]>) {
        if let closedError {
            promise.fail(closedError)
            return
        }
        guard let context, context.channel.isActive else {
            promise.fail(TTRPCError(.unavailable, "ttrpc: connection closed"))
            return
        }
        guard request.count <= FrameHeader.maxPayload else {
            promise.fail(TTRPCError(.resourceExhausted, "request of \(request.count) bytes exceeds the \(FrameHeader.maxPayload) byte frame limit"))
            return
        }
        let connection = NIOLoopBound(self, eventLoop: context.eventLoop)
        var entry = Pending(promise: promise)
        if let timeout {
            entry.timer = context.eventLoop.scheduleTask(in: .nanoseconds(timeout.wholeNanoseconds)) {
                connection.value.complete(streamID, .failure(TTRPCError(.deadlineExceeded, "deadline exceeded")))
            }
        }
        pending[streamID] = entry
        let frame = OutboundFrame(streamID: streamID, type: .request, payload: request)
        context.writeAndFlush(wrapOutboundOut(frame)).whenFailure { error in
            connection.value.complete(streamID, .failure(TTRPCError(.unavailable, "ttrpc: send failed: \(error)")))
        }
    }

    /// Fails a call whose caller was cancelled; a late response is then dropped.
    func cancel(_ streamID: UInt32) {
        complete(streamID, .failure(TTRPCError(.cancelled, "call cancelled")))
    }

    private func complete(_ streamID: UInt32, _ result: Result<[UInt8], TTRPCError>) {
        guard let entry = pending.removeValue(forKey: streamID) else { return }
        entry.timer?.cancel()
        entry.promise.completeWith(result.mapError { $0 as any Error })
    }

    private func failAll(_ error: TTRPCError) {
        if closedError == nil {
            closedError = error
        }
        let all = pending
        pending.removeAll()
        for entry in all.values {
            entry.timer?.cancel()
            entry.promise.fail(error)
        }
    }
}
