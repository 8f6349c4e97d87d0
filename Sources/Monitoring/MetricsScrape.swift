// GET /metrics over a Unix socket: how kata-ctl monitor reads each shim's endpoint. HTTP/1.1 with
// Connection: close; the body is capped (a shim's text is a few KiB; a peer that sends more is
// broken), and the whole exchange has a deadline.

import NIOCore
import NIOHTTP1
import NIOPosix

/// Why a scrape failed.
public struct ScrapeError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

public enum MetricsScrape {
    /// The largest body accepted.
    public static let maxBody = 4 << 20

    /// The body of GET /metrics from the endpoint at the Unix socket `path`.
    public static func get(
        unixSocket path: String, timeout: Duration = .seconds(5),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(ScrapeError) -> String {
        let loop = group.next()
        let promise = loop.makePromise(of: String.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(.nanoseconds(nanoseconds(timeout)))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ScrapeHandler(promise: promise))
                    }
                }
                .connect(unixDomainSocketPath: path).get()
        } catch {
            promise.fail(error)
            throw ScrapeError(description: "connect to \(path): \(error)")
        }
        let deadline = loop.scheduleTask(in: .nanoseconds(nanoseconds(timeout))) {
            promise.fail(ScrapeError(description: "no complete answer from \(path) within \(timeout)"))
            channel.close(promise: nil)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "localhost")
        headers.add(name: "Connection", value: "close")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/metrics", headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        defer {
            deadline.cancel()
            channel.close(promise: nil)
        }
        do {
            return try await promise.futureResult.get()
        } catch let error as ScrapeError {
            throw error
        } catch {
            throw ScrapeError(description: "GET /metrics from \(path): \(error)")
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }
}

/// Collects one response; fails on a status other than 200, a body over the cap, or a connection
/// that ends before the response does.
final class ScrapeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<String>
    private var status: HTTPResponseStatus?
    private var body: ByteBuffer?

    init(promise: EventLoopPromise<String>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            body = context.channel.allocator.buffer(capacity: 0)
        case .body(var part):
            guard (body?.readableBytes ?? 0) + part.readableBytes <= MetricsScrape.maxBody else {
                promise.fail(ScrapeError(description: "body larger than \(MetricsScrape.maxBody) bytes"))
                context.close(promise: nil)
                return
            }
            body?.writeBuffer(&part)
        case .end:
            guard let status else { return }
            guard status == .ok else {
                promise.fail(ScrapeError(description: "answered \(status.code) \(status.reasonPhrase)"))
                return
            }
            promise.succeed(body.map { String(buffer: $0) } ?? "")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ScrapeError(description: "the connection closed before the response ended"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
