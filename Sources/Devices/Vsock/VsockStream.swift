/// A host-side vsock connection: bytes in both directions, plain Swift, non-blocking.
///
/// `write` queues bytes for the guest (sent as the guest's credit allows); `read` returns what
/// the guest sent so far. The event handler runs (on the device's thread, outside any lock)
/// whenever data arrives, the state changes, or a `write` that was cut short can go on. Closing (or dropping) the stream shuts the
/// connection down in order.
public final class VsockStream: Sendable {
    let muxer: VsockMuxer
    let key: VsockConnectionKey
    let id: UInt64

    init(muxer: VsockMuxer, key: VsockConnectionKey, id: UInt64) {
        self.muxer = muxer
        self.key = key
        self.id = id
    }

    deinit { close() }

    public var hostPort: UInt32 { key.hostPort }
    public var guestPort: UInt32 { key.guestPort }

    /// The connection's phase; `.closed(.closed)` once it is gone.
    public var phase: VsockConnectionPhase {
        (try? muxer.withConnection(key, id: id) { $0.phase }) ?? .closed(.closed)
    }

    /// The guest will send nothing more and everything it sent has been read.
    public var isAtEnd: Bool {
        (try? muxer.withConnection(key, id: id) { $0.isAtEnd }) ?? true
    }

    /// Calls `handler` whenever data arrives, the phase changes, or room frees up after a short `write`.
    public func setEventHandler(_ handler: @escaping @Sendable () -> Void) {
        muxer.state.withLock { state in
            if state.connections[key]?.id == id { state.handlers[key] = handler }
        }
    }

    /// Queues `bytes` for the guest; returns how many were accepted (fewer when the send
    /// buffer is full: retry after the guest has read).
    @discardableResult
    public func write(_ bytes: [UInt8]) throws(VsockError) -> Int {
        try muxer.withConnection(key, id: id) { (connection) throws(VsockError) in try connection.write(bytes) }
    }

    /// Up to `maxCount` bytes the guest sent; empty when none are waiting (see `isAtEnd`).
    public func read(maxCount: Int = .max) throws(VsockError) -> [UInt8] {
        try muxer.withConnection(key, id: id) { (connection) throws(VsockError) -> [UInt8] in
            let bytes = connection.read(maxCount: maxCount)
            if bytes.isEmpty, let reason = connection.closeReason, reason != .closed { throw .closed(reason: reason) }
            return bytes
        }
    }

    /// Stops sending (`.send`) and/or receiving (`.receive`); the guest is told after pending data.
    public func shutdown(_ how: VsockShutdown) {
        _ = try? muxer.withConnection(key, id: id) { $0.shutdown(how) }
    }

    /// Ends the connection; idempotent.
    public func close() {
        _ = try? muxer.withConnection(key, id: id) { $0.detach() }
        muxer.state.withLock { state in
            guard let connection = state.connections[key], connection.id == id else { return }
            state.handlers[key] = nil
            muxer.store(connection, &state)
        }
    }
}

/// Guest-initiated connections to one host port.
public final class VsockListener: Sendable {
    let muxer: VsockMuxer
    public let port: UInt32

    init(muxer: VsockMuxer, port: UInt32) {
        self.muxer = muxer
        self.port = port
    }

    deinit { close() }

    /// The next connection the guest opened, or nil.
    public func accept() -> VsockStream? {
        muxer.state.withLock { state -> VsockStream? in
            guard var listener = state.listeners[port], !listener.pending.isEmpty else { return nil }
            let key = listener.pending.removeFirst()
            state.listeners[port] = listener
            guard let id = state.connections[key]?.id else { return nil }
            return VsockStream(muxer: muxer, key: key, id: id)
        }
    }

    /// Calls `handler` whenever a guest connection arrives.
    public func setEventHandler(_ handler: @escaping @Sendable () -> Void) {
        muxer.state.withLock { $0.listeners[port]?.handler = handler }
    }

    /// Stops listening; unaccepted connections are shut down.
    public func close() {
        muxer.state.withLock { state in
            for key in state.listeners.removeValue(forKey: port)?.pending ?? [] {
                guard var connection = state.connections[key] else { continue }
                connection.detach()
                muxer.store(connection, &state)
            }
        }
        if muxer.hasPendingPackets { muxer.wakeDevice() }
    }
}
