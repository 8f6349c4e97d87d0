import FUSE
import GuestMemory
import Logging
import VirtIO

/// Why a virtio-fs device could not be made.
public enum VirtioFsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The tag is empty, longer than 36 bytes, or contains a NUL.
    case invalidTag(String)
    /// The number of request queues is not in 1...maxRequestQueues.
    case invalidRequestQueueCount(Int)

    public var description: String {
        switch self {
        case .invalidTag(let tag): "virtio-fs: tag \"\(tag)\" must be 1...36 bytes without NUL"
        case .invalidRequestQueueCount(let n): "virtio-fs: \(n) request queues (1...\(VirtioFsDevice.maxRequestQueues))"
        }
    }
}

/// The virtio-fs device (id 26): queue 0 is the high-priority queue (FORGET, BATCH_FORGET),
/// queues 1...N carry requests. Each chain is one FUSE request: its readable buffers are the
/// request, its writable buffers the reply, handed to `FUSEServer` in place (no bounce copy).
/// A malformed chain (index, length or address the guest got wrong) breaks its queue and asks the
/// driver for a reset; a request the FUSE server refuses gets an errno reply.
public final class VirtioFsDevice: VirtioDevice {
    public static let queueSize: UInt16 = 1024
    public static let maxRequestQueues = 16
    /// struct virtio_fs_config { u8 tag[36]; le32 num_request_queues; }
    public static let tagSize = 36

    public let tag: String
    public let requestQueueCount: Int
    public let server: FUSEServer
    public let deviceType = VirtioDeviceType.fs
    public let availableFeatures = VirtioFeature.common
    public var ackedFeatures: UInt64 = 0
    public var queues: [Queue]
    /// Requests answered (including errno replies) since creation.
    public private(set) var requestsServed = 0
    /// Chains completed without a FUSE reply because their writable part cannot hold one.
    public private(set) var unanswerableRequests = 0
    /// Requests and replies with their bytes (the sandbox's metrics).
    public let traffic: DeviceTraffic

    private var memory: (any GuestMemory)?
    private var interrupt: (any InterruptTrigger)?
    private let logger: Logger
    /// Every line below is triggered by the guest: rate-limited.
    private var guestLog = GuestLogLimiter()

    public init(
        tag: String, server: FUSEServer, requestQueues: Int = 1, traffic: DeviceTraffic = DeviceTraffic(),
        logger: Logger = Logger(label: "kata-swift.virtio-fs")
    ) throws(VirtioFsError) {
        let bytes = Array(tag.utf8)
        guard (1...Self.tagSize).contains(bytes.count), !bytes.contains(0) else { throw .invalidTag(tag) }
        guard (1...Self.maxRequestQueues).contains(requestQueues) else { throw .invalidRequestQueueCount(requestQueues) }
        self.tag = tag
        self.requestQueueCount = requestQueues
        self.server = server
        self.traffic = traffic
        self.logger = logger
        queues = Self.makeQueues(count: 1 + requestQueues, maxSize: Self.queueSize)
    }

    /// Queues: hiprio plus the request queues (all of them are served over vhost-user too).
    public var queueCount: Int { 1 + requestQueueCount }

    public var configSpace: [UInt8] {
        var bytes = Array(tag.utf8)
        bytes += Array(repeating: 0, count: Self.tagSize - bytes.count)
        let n = UInt32(requestQueueCount)
        return bytes + (0..<4).map { UInt8(truncatingIfNeeded: n >> (8 * $0)) }
    }

    public func activate(memory: some GuestMemory, interrupt: some InterruptTrigger) throws(VirtioDeviceError) {
        self.memory = memory
        self.interrupt = interrupt
    }

    public func queueNotified(_ index: Int) {
        guard let memory, queues.indices.contains(index) else { return }
        // Every round re-arms kicks (EVENT_IDX's avail_event) so the driver kicks for its next
        // request, on any transport; requests that came in meanwhile are served in another round.
        if let error = serveQueue(index, memory: memory, interrupt: interrupt, { serve($0, memory) }) {
            queueBroke(index, error)
        }
    }

    /// The driver reset the device (or the vhost-user frontend stopped it): its FUSE session ends
    /// with it, so every inode and open file the guest held is released and a new INIT may come.
    public func reset() {
        memory = nil
        interrupt = nil
        server.resetSession()
    }

    /// Runs one request, counted; returns the bytes written into the chain's writable buffers.
    private func serve(_ chain: DescriptorChain, _ memory: any GuestMemory) -> UInt32 {
        traffic.countFromGuest(bytes: Int(clamping: chain.readableLength))
        let written = answer(chain, memory)
        if written > 0 { traffic.countToGuest(bytes: Int(written)) }
        return written
    }

    /// Answers one request; returns the bytes written into the chain's writable buffers.
    private func answer(_ chain: DescriptorChain, _ memory: any GuestMemory) -> UInt32 {
        guard chain.readable.count + chain.writable.count <= ChainBuffers.maxSegments else {
            guestLog.log(logger, .warning, "virtio-fs: chain \(chain.head) has \(chain.readable.count + chain.writable.count) buffers")
            return errorReply(FUSEErrno.tooBig, for: chain, memory)
        }
        let outcome: FUSEOutcome
        do {
            outcome = try ChainBuffers.withBuffers(of: chain, in: memory) { request, reply in
                server.handle(request, reply: reply)
            }
        } catch {
            // Only if guest RAM changed under a validated chain.
            guestLog.log(logger, .error, "virtio-fs: chain \(chain.head): \(error)")
            return 0
        }
        switch outcome {
        case .replied(let count):
            requestsServed += 1
            return UInt32(count)
        case .noReply:
            return 0
        case .replyBufferTooSmall:
            unanswerableRequests += 1
            guestLog.log(logger, .warning, "virtio-fs: chain \(chain.head) has \(chain.writableLength) writable bytes, less than a reply header")
            return 0
        }
    }

    /// A bare fuse_out_header with `error`, to the unique the request's header carries.
    private func errorReply(_ error: FUSEErrno, for chain: DescriptorChain, _ memory: any GuestMemory) -> UInt32 {
        guard chain.writableLength >= 16, let head = try? chain.read(from: memory, count: 16), head.count == 16 else {
            unanswerableRequests += 1
            return 0
        }
        var reply: [UInt8] = [16, 0, 0, 0]
        reply += (0..<4).map { UInt8(truncatingIfNeeded: UInt32(bitPattern: -error.rawValue) >> (8 * $0)) }
        reply += head[8..<16]
        guard (try? chain.write(reply, to: memory)) == 16 else { return 0 }
        requestsServed += 1
        return 16
    }

    private func queueBroke(_ index: Int, _ error: QueueError) {
        guestLog.log(logger, .error, "virtio-fs queue \(index): \(error)")
        interrupt?.signalNeedsReset()
    }
}

extension VirtioFsDevice: SnapshotCapableDevice {
    /// Saved only before the guest mounts it: a FUSE session's node ids name files of the
    /// saved sandbox's shared directory. A restored device serves its own sandbox's directory
    /// from the guest's first INIT on.
    public func savedDeviceState() throws(DeviceStateError) -> [UInt8] {
        guard !server.hasSession else { throw DeviceStateError("the guest has mounted virtio-fs \"\(tag)\"; save before the mount") }
        return []
    }

    public func restoreDeviceState(_ bytes: [UInt8]) throws(DeviceStateError) { try restoreEmptyState(bytes, name: "virtio-fs") }
}
