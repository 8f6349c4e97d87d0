// The ttrpc server: registered services, served on any number of listeners and connections.
import NIOCore
import NIOPosix
import Synchronization

/// Serves registered `TTRPCService`s. Every request runs concurrently in its own task and is
/// answered as it completes. Listen on a Unix socket path, on an already-listening descriptor
/// (containerd hands the shim its socket as fd 3), or serve one already-connected descriptor.
public final class TTRPCServer: Sendable {
    private struct Channels {
        var listeners: [ObjectIdentifier: any Channel] = [:]
        var connections: [ObjectIdentifier: any Channel] = [:]
        var closed = false
    }

    private let group: any EventLoopGroup
    private let registry = ServiceRegistry()
    private let calls = CallCounter()
    private let channels = Mutex(Channels())

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.group = group
    }

    /// A server dropped without `close()` still closes its listeners and connections.
    deinit {
        let all = channels.withLock { Array($0.listeners.values) + Array($0.connections.values) }
        for channel in all {
            channel.close(promise: nil)
        }
    }

    /// Serves `service`, replacing an earlier service of the same name. May be called while serving.
    public func register(_ service: TTRPCService) {
        registry.register(service)
    }

    /// Listens on a Unix socket at `path`; a stale socket file there is replaced.
    public func listen(unixSocketPath path: String) async throws {
        try await listen("listen on \(path)") {
            serverBootstrap().bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
        }
    }

    /// Accepts connections on `descriptor`, a socket that is already bound and listening.
    /// The server takes ownership of it and closes it on `close()`.
    public func listen(listeningDescriptor descriptor: CInt) async throws {
        try await listen("listen on fd \(descriptor)") {
            serverBootstrap().withBoundSocket(descriptor)
        }
    }

    /// Serves the single connection `descriptor` (e.g. an accepted vsock stream).
    /// The server takes ownership of it; it closes when the peer hangs up or on `close()`.
    public func serve(connectedDescriptor descriptor: CInt) async throws {
        do {
            _ = try await ClientBootstrap(group: group)
                .channelInitializer { [weak self] channel in
                    self?.initializeConnection(channel) ?? channel.close()
                }
                .withConnectedSocket(descriptor)
                .get()
        } catch {
            throw TTRPCError(.unavailable, "serve fd \(descriptor): \(error)")
        }
    }

    /// Connections open now.
    public var connectionCount: Int {
        channels.withLock { $0.connections.count }
    }

    /// Calls being handled now, across all connections.
    public var activeCallCount: Int {
        calls.current
    }

    /// Stops listening, closes every connection and cancels the calls in flight.
    public func close() async {
        let all = channels.withLock { state in
            state.closed = true
            return Array(state.listeners.values) + Array(state.connections.values)
        }
        for channel in all {
            try? await channel.close()
        }
        // A connection accepted just before `closed` was set closes itself in its initializer.
    }

    /// Stops listening, lets calls in flight finish for up to `gracePeriod`, then closes.
    public func shutdown(gracePeriod: Duration) async {
        let listeners = channels.withLock { state in
            state.closed = true
            return Array(state.listeners.values)
        }
        for listener in listeners {
            try? await listener.close()
        }
        let end = ContinuousClock.now + gracePeriod
        while calls.current > 0, ContinuousClock.now < end {
            try? await Task.sleep(for: .milliseconds(5))
        }
        await close()
    }

    // MARK: - channels

    private func serverBootstrap() -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .childChannelInitializer { [weak self] channel in
                self?.initializeConnection(channel) ?? channel.close()
            }
    }

    private func listen(_ operation: String, _ bind: () -> EventLoopFuture<any Channel>) async throws {
        let listener: any Channel
        do {
            listener = try await bind().get()
        } catch {
            throw TTRPCError(.unavailable, "\(operation): \(error)")
        }
        guard track(listener, asListener: true) else {
            try? await listener.close()
            throw TTRPCError(.unavailable, "\(operation): server is closed")
        }
    }

    private func initializeConnection(_ channel: any Channel) -> EventLoopFuture<Void> {
        guard track(channel, asListener: false) else {
            return channel.close()
        }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers(
                ByteToMessageHandler(FrameDecoder()),
                MessageToByteHandler(FrameEncoder()),
                ServerConnectionHandler(registry: registry, calls: calls))
        }
    }

    /// Records an open channel until it closes; false when the server is already closed.
    private func track(_ channel: any Channel, asListener: Bool) -> Bool {
        let key = ObjectIdentifier(channel)
        let accepted = channels.withLock { state in
            guard !state.closed else { return false }
            if asListener {
                state.listeners[key] = channel
            } else {
                state.connections[key] = channel
            }
            return true
        }
        if accepted {
            channel.closeFuture.whenComplete { [weak self] _ in
                self?.channels.withLock { state in
                    state.listeners[key] = nil
                    state.connections[key] = nil
                }
            }
        }
        return accepted
    }
}
