/// Why a connection ended, as its host stream reports it.
public enum VsockCloseReason: Equatable, Sendable {
    /// The guest refused a host-initiated connection (RST in reply to REQUEST).
    case refused
    /// The guest reset the connection.
    case reset
    /// Both sides shut down and the connection was torn down in order.
    case closed
    /// The guest broke the protocol (credit overrun, unexpected op) and was sent RST.
    case protocolError
    /// The guest driver reset the device; every connection is gone.
    case deviceReset
}

/// Lifecycle of one connection, keyed by (host port, guest port).
public enum VsockConnectionPhase: Equatable, Sendable {
    /// Host-initiated: REQUEST queued or sent, waiting for RESPONSE.
    case connecting
    case established
    /// The host closed its stream: SHUTDOWN queued or sent, waiting for the guest's RST.
    case closing
    case closed(VsockCloseReason)
}

/// Addresses of a connection: the host-side port and the guest-side port.
struct VsockConnectionKey: Hashable, Sendable {
    var hostPort: UInt32
    var guestPort: UInt32
}

/// One stream connection's state machine and both directions of credit-based flow control
/// (virtio 1.2, 5.10.6.3). Pure state: the muxer routes packets to it and drains its output.
///
/// Guest to host: we advertise `bufferAllocation` and `forwardCount` (bytes the host app has
/// read); a guest that sends beyond that credit is reset. Host to guest: we send at most the
/// guest's credit, `peerBufferAllocation - (sentTotal - peerForwardCount)`, and ask for a
/// credit update when it is exhausted.
struct VsockConnection {
    struct Control: Equatable {
        var op: VsockOp
        var flags: UInt32 = 0
    }

    let key: VsockConnectionKey
    /// Distinguishes a connection from an earlier one on the same ports (set by the muxer).
    var id: UInt64 = 0
    private(set) var phase: VsockConnectionPhase
    /// Whether the host side has closed its stream (nobody reads any more).
    private(set) var detached = false

    // Guest to host.
    let bufferAllocation: UInt32
    private(set) var fromGuest: [UInt8] = []
    private var forwardCount: UInt32 = 0
    private var advertisedForwardCount: UInt32 = 0
    private var receivedTotal: UInt32 = 0
    private(set) var peerShutdown: VsockShutdown = []

    // Host to guest.
    let sendLimit: Int
    private(set) var toGuest: [UInt8] = []
    private var sentTotal: UInt32 = 0
    private var peerBufferAllocation: UInt32 = 0
    private var peerForwardCount: UInt32 = 0
    private var creditRequested = false
    private(set) var localShutdown: VsockShutdown = []
    private var shutdownSent = false
    /// The host's last `write` was cut short by `sendLimit`: tell it when room frees up.
    private var writeBlocked = false

    private var controls: [Control] = []

    init(key: VsockConnectionKey, phase: VsockConnectionPhase, bufferAllocation: UInt32, sendLimit: Int) {
        self.key = key
        self.phase = phase
        self.bufferAllocation = bufferAllocation
        self.sendLimit = sendLimit
        if phase == .connecting { controls = [Control(op: .request)] }
    }

    /// A guest-initiated connection accepted by a listener: answer with RESPONSE.
    static func accepted(_ key: VsockConnectionKey, header: VsockHeader, bufferAllocation: UInt32, sendLimit: Int) -> VsockConnection {
        var connection = VsockConnection(key: key, phase: .established, bufferAllocation: bufferAllocation, sendLimit: sendLimit)
        connection.updateCredit(from: header)
        connection.controls = [Control(op: .response)]
        return connection
    }

    var isClosed: Bool { if case .closed = phase { true } else { false } }

    /// The guest can send no more and everything it sent has been read.
    var isAtEnd: Bool { fromGuest.isEmpty && (isClosed || peerShutdown.contains(.send)) }

    /// Closed, nothing left to send, and the host stream is gone.
    var canBeRemoved: Bool { isClosed && controls.isEmpty && detached }

    var peerCredit: Int {
        max(0, Int(peerBufferAllocation) - Int(sentTotal &- peerForwardCount))
    }

    // MARK: packets from the guest

    /// Applies one guest packet addressed to this connection.
    mutating func receive(_ packet: VsockPacket) {
        updateCredit(from: packet.header)
        switch packet.header.operation {
        case .response:
            guard phase == .connecting else { return abort(.protocolError) }
            phase = .established
        case .readWrite:
            guard phase == .established || phase == .closing, !peerShutdown.contains(.send) else {
                return abort(.protocolError)
            }
            guard packet.payload.count <= Int(bufferAllocation) - fromGuest.count else {
                return abort(.protocolError)  // the guest overran the credit we gave it
            }
            if !detached { fromGuest += packet.payload }
            receivedTotal &+= UInt32(packet.payload.count)
            if detached { consume(packet.payload.count) }
        case .creditUpdate:
            break
        case .creditRequest:
            queue(Control(op: .creditUpdate))
        case .shutdown:
            peerShutdown.formUnion(VsockShutdown(rawValue: packet.header.flags & VsockShutdown.both.rawValue))
            if peerShutdown == .both || phase == .closing && peerShutdown.contains(.send) {
                abort(.closed)
            }
        case .reset:
            controls.removeAll()
            toGuest.removeAll()
            phase = .closed(phase == .connecting ? .refused : phase == .closing ? .closed : .reset)
        case .request, nil:
            abort(.protocolError)
        }
    }

    private mutating func updateCredit(from header: VsockHeader) {
        peerBufferAllocation = header.bufferAllocation
        peerForwardCount = header.forwardCount
        if peerCredit > 0 { creditRequested = false }
    }

    /// Sends RST and ends the connection.
    private mutating func abort(_ reason: VsockCloseReason) {
        controls = [Control(op: .reset)]
        toGuest.removeAll()
        phase = .closed(reason)
    }

    private mutating func queue(_ control: Control) {
        if !controls.contains(control) { controls.append(control) }
    }

    // MARK: packets to the guest

    var hasPacket: Bool {
        if !controls.isEmpty { return true }
        guard phase == .established || phase == .closing else { return false }
        if !toGuest.isEmpty { return peerCredit > 0 || !creditRequested }
        return !localShutdown.isEmpty && !shutdownSent
    }

    /// The next packet for the guest (ports, op, flags, credit fields, payload); nil if none.
    mutating func nextPacket(maxPayload: Int) -> VsockPacket? {
        var op: VsockOp
        var flags: UInt32 = 0
        var payload: [UInt8] = []
        if !controls.isEmpty {
            let control = controls.removeFirst()
            (op, flags) = (control.op, control.flags)
        } else if phase == .established || phase == .closing, !toGuest.isEmpty {
            let credit = peerCredit
            if credit == 0 {
                guard !creditRequested else { return nil }
                creditRequested = true
                op = .creditRequest
            } else {
                let count = min(toGuest.count, credit, maxPayload)
                guard count > 0 else { return nil }
                payload = Array(toGuest.prefix(count))
                toGuest.removeFirst(count)
                sentTotal &+= UInt32(count)
                op = .readWrite
            }
        } else if phase == .established || phase == .closing, !localShutdown.isEmpty, !shutdownSent {
            shutdownSent = true
            op = .shutdown
            flags = localShutdown.rawValue
        } else {
            return nil
        }
        advertisedForwardCount = forwardCount
        let header = VsockHeader(
            sourceCID: VsockHeader.hostCID, destinationCID: 0, sourcePort: key.hostPort,
            destinationPort: key.guestPort, op: op, flags: flags,
            bufferAllocation: bufferAllocation, forwardCount: forwardCount)
        return VsockPacket(header: header, payload: payload)
    }

    // MARK: host side

    /// Queues host bytes for the guest; returns how many fitted under `sendLimit`.
    mutating func write(_ bytes: [UInt8]) throws(VsockError) -> Int {
        switch phase {
        case .connecting: throw .notConnected
        case .closing, .closed: throw .closed(reason: closeReason ?? .closed)
        case .established: break
        }
        guard !localShutdown.contains(.send) else { throw .shutDown }
        guard !peerShutdown.contains(.receive) else { throw .closed(reason: .closed) }
        let count = min(bytes.count, sendLimit - toGuest.count)
        toGuest += bytes.prefix(count)
        if count < bytes.count { writeBlocked = true }
        return count
    }

    /// Whether a host writer that was refused room may write again (room freed since): true
    /// once per refusal. Without it a writer that waits for the stream's event would wait
    /// forever once the guest has nothing more to say (a 300 KB echo stalled that way).
    mutating func takeWritable() -> Bool {
        guard writeBlocked, toGuest.count < sendLimit || isClosed else { return false }
        writeBlocked = false
        return true
    }

    /// Takes up to `maxCount` bytes the guest sent; frees credit for the guest.
    mutating func read(maxCount: Int) -> [UInt8] {
        let count = min(maxCount, fromGuest.count)
        let bytes = Array(fromGuest.prefix(count))
        fromGuest.removeFirst(count)
        consume(count)
        return bytes
    }

    /// The host consumed `count` bytes: advertise the new space once the guest's view of it
    /// has dropped below half the buffer.
    private mutating func consume(_ count: Int) {
        forwardCount &+= UInt32(count)
        let guestSeesFree = Int(bufferAllocation) - Int(receivedTotal &- advertisedForwardCount)
        if count > 0, guestSeesFree < Int(bufferAllocation / 2), !isClosed {
            queue(Control(op: .creditUpdate))
        }
    }

    mutating func shutdown(_ how: VsockShutdown) {
        guard phase == .established else { return }
        localShutdown.formUnion(how)
    }

    /// The host closed its stream: tear down in order (SHUTDOWN after pending data, then the
    /// guest's RST), or at once when not established.
    mutating func detach() {
        detached = true
        fromGuest.removeAll()
        switch phase {
        case .connecting:
            controls = [Control(op: .reset)]
            phase = .closed(.closed)
        case .established:
            localShutdown = .both
            phase = .closing
        case .closing, .closed:
            break
        }
    }

    /// The device was reset: the guest has forgotten the connection.
    mutating func forget() {
        controls.removeAll()
        toGuest.removeAll()
        phase = .closed(.deviceReset)
    }

    /// One line of counters, for diagnostics.
    var summary: String {
        "\(key.hostPort)<->\(key.guestPort) \(phase) fromGuest=\(fromGuest.count) toGuest=\(toGuest.count) "
            + "peerCredit=\(peerCredit) creditRequested=\(creditRequested) sent=\(sentTotal) peerFwd=\(peerForwardCount) "
            + "peerBuf=\(peerBufferAllocation) received=\(receivedTotal) fwd=\(forwardCount) advFwd=\(advertisedForwardCount) "
            + "controls=\(controls.map { "\($0.op)" }) writeBlocked=\(writeBlocked)"
    }

    var closeReason: VsockCloseReason? { if case .closed(let reason) = phase { reason } else { nil } }
}
