import Devices
import Logging
import SystemSupport

/// The host side of a VM's vsock, the same for every backend: the muxer (our device model's
/// backend), a bridge that turns vsock streams into Unix socket descriptors, and the optional
/// hybrid socket.
final class VsockHost: Sendable {
    let muxer: VsockMuxer
    let bridge: VsockBridge
    let hybrid: HybridVsockServer?

    init(hybridPath: String?, forwardedPorts: [UInt32], logger: Logger) throws(HypervisorError) {
        let muxer = VsockMuxer()
        let bridge = try VsockBridge(logger: logger)
        do {
            hybrid = try hybridPath.map { (path) throws(HypervisorError) in
                try HybridVsockServer(path: path, muxer: muxer, bridge: bridge, forwardedPorts: forwardedPorts, logger: logger)
            }
        } catch {
            bridge.stop()
            throw error
        }
        self.muxer = muxer
        self.bridge = bridge
    }

    func stop() {
        hybrid?.stop()
        bridge.stop()
    }

    /// Connects to guest port `port`, retrying refusals (guest still booting) until the deadline.
    func connect(port: UInt32, timeoutSeconds: Double, isRunning: @Sendable () -> Bool) async throws(HypervisorError) -> FileDescriptor {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        var lastReason = "timed out"
        while ContinuousClock.now < deadline {
            guard isRunning() else { throw .vsockConnect(port: port, reason: "the VM is not running") }
            let stream: VsockStream
            do {
                stream = try muxer.connect(port: port)
            } catch {
                throw .vsockConnect(port: port, reason: "\(error)")
            }
            let phase = await Self.settle(stream, deadline: deadline, isRunning: isRunning)
            switch phase {
            case .established:
                let (mine, theirs): (FileDescriptor, FileDescriptor)
                do {
                    (mine, theirs) = try UnixSocket.pair()
                } catch {
                    stream.close()
                    throw .system(operation: "socketpair for vsock port \(port)", error)
                }
                bridge.join(socket: mine, stream: stream)
                return theirs
            case .closed(let reason):
                lastReason = "\(reason)"
                stream.close()
                try? await Task.sleep(for: .milliseconds(50))
            case .connecting, .closing:
                stream.close()
                lastReason = "no answer from the guest"
            }
        }
        throw .vsockConnect(port: port, reason: "\(lastReason) after \(timeoutSeconds) s")
    }

    /// Waits until `stream` leaves `.connecting` or the deadline passes.
    private static func settle(
        _ stream: VsockStream, deadline: ContinuousClock.Instant, isRunning: @Sendable () -> Bool
    ) async -> VsockConnectionPhase {
        while true {
            let phase = stream.phase
            if phase != .connecting || ContinuousClock.now >= deadline || !isRunning() { return phase }
            let changed = AsyncStream<Void>.makeStream()
            stream.setEventHandler { changed.continuation.yield() }
            if stream.phase != .connecting { continue }
            // Poll as well, in case the event fired between the check and the handler.
            let poll = Task {
                try? await Task.sleep(for: .milliseconds(20))
                changed.continuation.yield()
            }
            for await _ in changed.stream { break }
            poll.cancel()
            stream.setEventHandler {}
        }
    }

    /// Guest connections to host port `port`, each bridged to a Unix socket descriptor.
    func listen(port: UInt32) throws(HypervisorError) -> AsyncStream<FileDescriptor> {
        let listener: VsockListener
        do {
            listener = try muxer.listen(port: port)
        } catch {
            throw .invalidConfig("\(error)")
        }
        let (stream, continuation) = AsyncStream<FileDescriptor>.makeStream()
        let bridge = self.bridge
        listener.setEventHandler {
            while let connection = listener.accept() {
                guard let (mine, theirs) = try? UnixSocket.pair() else {
                    connection.close()
                    continue
                }
                bridge.join(socket: mine, stream: connection)
                continuation.yield(theirs)
            }
        }
        continuation.onTermination = { _ in listener.close() }
        return stream
    }
}
