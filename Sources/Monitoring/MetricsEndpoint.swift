// An HTTP/1.1 server with one page: GET /metrics answers with the text a closure renders at that
// moment. The shim serves its sandbox's metrics on a Unix socket in the sandbox directory (root
// only, like Kata's shim-monitor socket); kata-ctl monitor serves the host's on a TCP address.
// One response per connection (Connection: close): scrapes are seconds apart, and a peer that
// never reads cannot hold more than its own connection.

import NIOCore
import NIOHTTP1
import NIOPosix

/// A listening metrics endpoint; `close()` stops it.
public final class MetricsEndpoint: Sendable {
    /// Renders the exposition text for one scrape.
    public typealias Render = @Sendable () async -> String

    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Serves on a Unix socket at `path` (an existing socket file there is replaced).
    public static func serve(
        unixSocket path: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, render: @escaping Render
    ) async throws -> MetricsEndpoint {
        let channel = try await bootstrap(group: group, render: render)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        return MetricsEndpoint(channel: channel)
    }

    /// Serves on TCP `host`:`port` (port 0: the kernel picks one; see `port`).
    public static func serve(
        host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, render: @escaping Render
    ) async throws -> MetricsEndpoint {
        let channel = try await bootstrap(group: group, render: render).bind(host: host, port: port).get()
        return MetricsEndpoint(channel: channel)
    }

    /// The TCP port bound, for a TCP endpoint.
    public var port: Int? { channel.localAddress?.port }

    /// Stops listening. Connections in progress finish on their own.
    public func close() async {
        try? await channel.close()
    }

    private static func bootstrap(group: any EventLoopGroup, render: @escaping Render) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(render: render))
                }
            }
    }
}

/// Answers each request head once its end arrives: 200 with the rendered text for GET /metrics,
/// 404 for another path, 405 for another method; then closes the connection.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let render: MetricsEndpoint.Render
    private var head: HTTPRequestHead?

    init(render: @escaping MetricsEndpoint.Render) {
        self.render = render
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break
        case .end:
            guard let request = head else { return }
            head = nil
            let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
            guard request.method == .GET || request.method == .HEAD else {
                respond(context, status: .methodNotAllowed, body: "only GET\n", headOnly: false)
                return
            }
            guard path == "/metrics" else {
                respond(context, status: .notFound, body: "not found: the metrics are at /metrics\n", headOnly: request.method == .HEAD)
                return
            }
            let headOnly = request.method == .HEAD
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let render = self.render
            context.eventLoop.makeFutureWithTask { await render() }.whenSuccess { text in
                let (handler, context) = bound.value
                handler.respond(context, status: .ok, body: text, contentType: Exposition.contentType, headOnly: headOnly)
            }
        }
    }

    /// A request that is not HTTP: the codec's error handler has answered 400; the connection ends.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func respond(
        _ context: ChannelHandlerContext, status: HTTPResponseStatus, body: String,
        contentType: String = "text/plain; charset=utf-8", headOnly: Bool
    ) {
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(buffer.readableBytes))
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !headOnly { context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil) }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
