import GuestMemory
import Logging
import VirtIO

import CSupport
import Glibc

/// The host's entropy source: getrandom(2).
public enum HostEntropy {
    /// `count` random bytes from getrandom(2), retried on EINTR and short reads.
    public static func bytes(_ count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var filled = 0
        result.withUnsafeMutableBytes { buffer in
            while filled < count {
                // SAFETY: the pointer and length stay inside `buffer`.
                let n = ks_getrandom(buffer.baseAddress! + filled, count - filled, 0)
                if n > 0 { filled += n } else if n < 0, errno != EINTR { break }
            }
        }
        // getrandom on the urandom pool does not fail after boot; if it ever did, fall back
        // to the standard library's generator (itself getrandom-based) rather than zeros.
        if filled < count {
            var generator = SystemRandomNumberGenerator()
            for i in filled..<count { result[i] = UInt8.random(in: .min ... .max, using: &generator) }
        }
        return result
    }
}

/// virtio-rng (id 4): one queue; fills each writable buffer with host entropy.
public final class RngDevice: VirtioDevice {
    public static let queueSize: UInt16 = 256
    /// Most bytes served per request, so a guest cannot make us generate gigabytes at once.
    public static let maxBytesPerRequest = 64 * 1024

    public let deviceType = VirtioDeviceType.rng
    public let availableFeatures = VirtioFeature.common
    public var ackedFeatures: UInt64 = 0
    public var queues = RngDevice.makeQueues(count: 1, maxSize: RngDevice.queueSize)
    public let configSpace: [UInt8] = []
    /// Bytes handed to the guest since creation.
    public private(set) var bytesServed = 0

    private let entropy: @Sendable (Int) -> [UInt8]
    private var memory: (any GuestMemory)?
    private var interrupt: (any InterruptTrigger)?
    private let logger: Logger
    /// Every line below is triggered by the guest: rate-limited.
    private var guestLog = GuestLogLimiter()

    public init(
        entropy: @escaping @Sendable (Int) -> [UInt8] = HostEntropy.bytes,
        logger: Logger = Logger(label: "kata-swift.rng")
    ) {
        self.entropy = entropy
        self.logger = logger
    }

    public func activate(memory: some GuestMemory, interrupt: some InterruptTrigger) throws(VirtioDeviceError) {
        self.memory = memory
        self.interrupt = interrupt
    }

    public func queueNotified(_ index: Int) {
        guard index == 0, let memory else { return }
        if let error = serveQueue(0, memory: memory, interrupt: interrupt, { fill($0, memory) }) {
            guestLog.log(logger, .error, "rng queue: \(error)")
            interrupt?.signalNeedsReset()
        }
    }

    /// Fills one chain's writable buffers with entropy, up to `maxBytesPerRequest`; the bytes written.
    private func fill(_ chain: DescriptorChain, _ memory: some GuestMemory) -> UInt32 {
        let count = Int(min(chain.writableLength, UInt64(Self.maxBytesPerRequest)))
        do {
            let written = try chain.write(entropy(count), to: memory)
            bytesServed += written
            return UInt32(written)
        } catch {
            guestLog.log(logger, .error, "rng: writing entropy: \(error)")
            return 0
        }
    }

    public func reset() {
        memory = nil
        interrupt = nil
    }
}

extension RngDevice: SnapshotCapableDevice {
    /// Nothing beyond the transport: each request is answered whole while it is taken.
    public func savedDeviceState() throws(DeviceStateError) -> [UInt8] { [] }

    public func restoreDeviceState(_ bytes: [UInt8]) throws(DeviceStateError) { try restoreEmptyState(bytes, name: "rng") }
}
