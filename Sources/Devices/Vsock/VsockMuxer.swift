import Synchronization

/// The in-process host side of vsock: connections by (host port, guest port), listeners for
/// guest-initiated connections, host-initiated `connect`, and RST for anything addressed to
/// nothing. Thread-safe: the device drives it from the event loop while the shim reads and
/// writes streams from elsewhere; `onPendingPackets` tells the event loop to run the device.
public final class VsockMuxer: VsockBackend {
    /// Receive buffer we advertise per connection (guest to host), bytes.
    public let bufferAllocation: UInt32
    /// Host bytes a connection may queue for the guest before `write` accepts less.
    public let sendLimit: Int
    /// Guest connections a listener may hold unaccepted; more are reset.
    public let backlog: Int

    struct Listener {
        var pending: [VsockConnectionKey] = []
        var handler: (@Sendable () -> Void)?
    }

    struct State {
        var connections: [VsockConnectionKey: VsockConnection] = [:]
        var handlers: [VsockConnectionKey: @Sendable () -> Void] = [:]
        var listeners: [UInt32: Listener] = [:]
        /// RSTs for packets that match no connection, as (host port, guest port).
        var resets: [VsockConnectionKey] = []
        var nextHostPort: UInt32 = VsockMuxer.firstEphemeralPort
        var nextID: UInt64 = 1
        var wake: (@Sendable () -> Void)?
    }

    static let firstEphemeralPort: UInt32 = 1 << 30
    /// RSTs queued for unknown destinations; beyond this (a guest that sends but never gives
    /// RX buffers) further ones are dropped rather than growing without bound.
    static let maxQueuedResets = 1024
    let state = Mutex(State())

    public init(bufferAllocation: UInt32 = 256 * 1024, sendLimit: Int = 256 * 1024, backlog: Int = 64) {
        self.bufferAllocation = bufferAllocation
        self.sendLimit = sendLimit
        self.backlog = backlog
    }

    /// Called (from any thread, outside the muxer's lock) when packets for the guest become
    /// pending; the host of the device then runs the device's RX processing.
    public func setWakeHandler(_ wake: @escaping @Sendable () -> Void) {
        state.withLock { $0.wake = wake }
    }

    // MARK: host API

    /// Accepts guest connections to host port `port`.
    public func listen(port: UInt32) throws(VsockError) -> VsockListener {
        try state.withLock { (state) throws(VsockError) in
            guard state.listeners[port] == nil else { throw .portInUse(port) }
            state.listeners[port] = Listener()
        }
        return VsockListener(muxer: self, port: port)
    }

    /// Opens a connection to guest port `port`; the stream is `.connecting` until the guest answers.
    public func connect(port: UInt32) throws(VsockError) -> VsockStream {
        let (key, id) = try state.withLock { (state) throws(VsockError) -> (VsockConnectionKey, UInt64) in
            let hostPort = try Self.freeHostPort(&state)
            let key = VsockConnectionKey(hostPort: hostPort, guestPort: port)
            var connection = VsockConnection(
                key: key, phase: .connecting, bufferAllocation: bufferAllocation, sendLimit: sendLimit)
            connection.id = state.nextID
            state.nextID += 1
            state.connections[key] = connection
            return (key, connection.id)
        }
        wakeDevice()
        return VsockStream(muxer: self, key: key, id: id)
    }

    private static func freeHostPort(_ state: inout State) throws(VsockError) -> UInt32 {
        for _ in 0..<1024 {
            let port = state.nextHostPort
            state.nextHostPort = port == .max ? firstEphemeralPort : port + 1
            let used = state.listeners[port] != nil || state.connections.keys.contains { $0.hostPort == port }
            if !used { return port }
        }
        throw .noFreePort
    }

    // MARK: VsockBackend

    public func handleGuestPacket(_ packet: VsockPacket) {
        let header = packet.header
        let key = VsockConnectionKey(hostPort: header.destinationPort, guestPort: header.sourcePort)
        let notify = state.withLock { state -> [@Sendable () -> Void] in
            if header.type != VsockHeader.typeStream {
                if header.operation != .reset { Self.queueReset(key, &state) }
                return []
            }
            if header.operation == .request, state.connections[key].map({ $0.isClosed }) ?? true {
                return accept(key, header, &state)
            }
            guard var connection = state.connections[key] else {
                if header.operation != .reset { Self.queueReset(key, &state) }
                return []
            }
            connection.receive(packet)
            store(connection, &state)
            return state.handlers[key].map { [$0] } ?? []
        }
        notify.forEach { $0() }
    }

    private func accept(_ key: VsockConnectionKey, _ header: VsockHeader, _ state: inout State) -> [@Sendable () -> Void] {
        guard var listener = state.listeners[key.hostPort], listener.pending.count < backlog else {
            Self.queueReset(key, &state)
            return []
        }
        state.handlers[key] = nil
        var connection = VsockConnection.accepted(key, header: header, bufferAllocation: bufferAllocation, sendLimit: sendLimit)
        connection.id = state.nextID
        state.nextID += 1
        state.connections[key] = connection
        listener.pending.append(key)
        state.listeners[key.hostPort] = listener
        return listener.handler.map { [$0] } ?? []
    }

    private static func queueReset(_ key: VsockConnectionKey, _ state: inout State) {
        if state.resets.count < maxQueuedResets { state.resets.append(key) }
    }

    public var hasPendingPackets: Bool {
        state.withLock { state in !state.resets.isEmpty || state.connections.values.contains { $0.hasPacket } }
    }

    public func nextPacketForGuest(maxPayload: Int) -> VsockPacket? {
        let (packet, writable) = state.withLock { state -> (VsockPacket?, (@Sendable () -> Void)?) in
            if !state.resets.isEmpty {
                let key = state.resets.removeFirst()
                return (VsockPacket(header: VsockHeader(
                    sourceCID: VsockHeader.hostCID, destinationCID: 0, sourcePort: key.hostPort,
                    destinationPort: key.guestPort, op: .reset)), nil)
            }
            // Any connection with output; the dictionary's order is arbitrary.
            guard let key = state.connections.first(where: { $0.value.hasPacket })?.key,
                var connection = state.connections[key]
            else { return (nil, nil) }
            let packet = connection.nextPacket(maxPayload: maxPayload)
            // Room in the send buffer again: the host writer that was refused may go on.
            let handler = connection.takeWritable() ? state.handlers[key] : nil
            store(connection, &state)
            return (packet, handler)
        }
        writable?()
        return packet
    }

    /// Connections open or closing (a snapshot is taken only with none).
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Every connection's counters, one per line (diagnostics for stalls).
    public var diagnostics: String {
        state.withLock { state in
            state.connections.values.map(\.summary).joined(separator: "\n") + " resets=\(state.resets.count)"
        }
    }

    public func deviceReset() {
        let notify = state.withLock { state -> [@Sendable () -> Void] in
            state.resets.removeAll()
            for key in Array(state.connections.keys) {
                state.connections[key]?.forget()
                if let connection = state.connections[key] { store(connection, &state) }
            }
            return Array(state.handlers.values)
        }
        notify.forEach { $0() }
    }

    // MARK: for streams and listeners

    func store(_ connection: VsockConnection, _ state: inout State) {
        if connection.canBeRemoved {
            state.connections[connection.key] = nil
            state.handlers[connection.key] = nil
        } else {
            state.connections[connection.key] = connection
        }
    }

    /// Runs `body` on connection `id` at `key`; throws `.closed` when it is gone.
    func withConnection<R>(
        _ key: VsockConnectionKey, id: UInt64, _ body: (inout VsockConnection) throws(VsockError) -> R
    ) throws(VsockError) -> R {
        let result = try state.withLock { (state) throws(VsockError) -> R in
            guard var connection = state.connections[key], connection.id == id else { throw .closed(reason: .closed) }
            let result = try body(&connection)
            store(connection, &state)
            return result
        }
        if hasPendingPackets { wakeDevice() }
        return result
    }

    public func wakeDevice() {
        state.withLock { $0.wake }?()
    }
}
