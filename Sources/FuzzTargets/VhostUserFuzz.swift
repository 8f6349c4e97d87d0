// vhost-user: the frontend's byte stream, split into messages by the decoder and handled by a
// session over a vsock device (as QEMU drives ours), with a platform that maps the memory table
// into heap memory and hands out recording interrupt lines.
//
// Input: u8 (bits 0-6: chunk size, 0 = all at once; bit 7: one fd too many with every message),
// then the stream. Each message comes with the fds its request needs (fake numbers).
import Devices
import GuestMemory
import VhostUser
import VirtIO
import VirtIOTestSupport

enum VhostUserFuzz {
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let control = input.u8()
        let chunk = Int(control & 0x7f)
        let extraFD = control & 0x80 != 0
        let stream = input.rest()

        let platform = Platform()
        let device = VsockDevice(guestCID: 3, backend: VsockMuxer())
        let session = VhostUserSession(device: device, queueCount: 2, platform: platform)
        var decoder = VhostUserDecoder()
        var start = 0
        let step = chunk == 0 ? max(stream.count, 1) : chunk
        framing: while start < stream.count {
            let end = min(start + step, stream.count)
            decoder.append(stream[start..<end])
            start = end
            while true {
                let message: VhostUserMessage
                do {
                    guard let next = try decoder.next() else { break }
                    message = next
                } catch {
                    break framing  // the server drops a connection whose framing broke
                }
                let fds = platform.fds(for: message, extra: extraFD)
                do {
                    _ = try session.handle(message, fds: fds)
                } catch {
                    _ = session.reply(to: message, error: error)
                }
                if session.isActive {
                    for queue in 0..<2 { session.kick(queue: queue) }
                    device.processBackend()
                }
            }
        }
        session.disconnect()
    }

    /// Memory regions become heap memory (at most 16 MiB in all, as a test frontend would map);
    /// fds are numbers that are never opened.
    final class Platform: VhostUserPlatform {
        private var nextFD: Int32 = 1000

        func mapMemory(_ regions: [VhostUserMemoryRegion], fds: [Int32]) throws -> any GuestMemory {
            let total = regions.reduce(UInt64(0)) { $0 &+ $1.size }
            guard total <= 16 << 20, regions.allSatisfy({ $0.size <= 16 << 20 }) else { throw TooLarge() }
            return try HeapGuestMemory(regions: regions.map { GuestRegion(start: GuestAddress($0.guestAddress), size: $0.size) })
        }

        func interruptLine(fd: Int32) -> any InterruptLine { RecordingInterruptLine() }
        func close(fd: Int32) {}

        /// The fds a frontend sends with `message`: one per region of SET_MEM_TABLE, one for
        /// SET_VRING_KICK/CALL/ERR unless the no-fd bit is set.
        func fds(for message: VhostUserMessage, extra: Bool) -> [Int32] {
            var count = 0
            switch message.knownRequest {
            case .setMemTable:
                count = message.payload.first.map { min(Int($0), VhostUserMemoryRegion.maxRegions) } ?? 0
            case .setVringKick, .setVringCall, .setVringErr:
                count = message.payload.count > 1 && message.payload[1] & 1 != 0 ? 0 : 1
            default:
                count = 0
            }
            if extra { count += 1 }
            return (0..<count).map { _ in
                nextFD += 1
                return nextFD
            }
        }

        struct TooLarge: Error {}
    }

    // MARK: seeds

    /// QEMU's start-up sequence for vhost-user-vsock, and a few messages it never sends.
    static var seeds: [(name: String, bytes: [UInt8])] {
        func message(_ request: VhostUserRequest, _ payload: [UInt8] = [], needReply: Bool = false) -> [UInt8] {
            VhostUserMessage(request, flags: VhostUserFlag.version | (needReply ? VhostUserFlag.needReply : 0), payload: payload).bytes
        }
        func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let memTable = u32(1) + u32(0) + u64(0) + u64(0x10_0000) + u64(0x7f00_0000_0000) + u64(0)
        var startUp: [UInt8] = []
        startUp += message(.getFeatures)
        startUp += message(.getProtocolFeatures)
        startUp += message(.setProtocolFeatures, u64(VhostUserFeature.replyAck | VhostUserFeature.config))
        startUp += message(.getQueueNum)
        startUp += message(.setOwner)
        startUp += message(.setFeatures, u64(VirtioFeature.version1 | VhostUserFeature.protocolFeatures))
        startUp += message(.setMemTable, memTable, needReply: true)
        for queue: UInt32 in 0..<2 {
            let base = 0x7f00_0000_0000 + UInt64(queue) * 0x8000
            startUp += message(.setVringNum, u32(queue) + u32(256))
            startUp += message(.setVringBase, u32(queue) + u32(0))
            startUp += message(.setVringAddr, u32(queue) + u32(0) + u64(base) + u64(base + 0x2000) + u64(base + 0x1000) + u64(0))
            startUp += message(.setVringKick, u64(UInt64(queue)))
            startUp += message(.setVringCall, u64(UInt64(queue)))
            startUp += message(.setVringEnable, u32(queue) + u32(1))
        }
        startUp += message(.getConfig, u32(0) + u32(8) + u32(0) + [UInt8](repeating: 0, count: 8))
        startUp += message(.getVringBase, u32(0) + u32(0))
        var odd: [UInt8] = []
        odd += message(.setLogBase, u64(0), needReply: true)
        odd += VhostUserMessage(request: 99, payload: [1, 2, 3]).bytes
        odd += message(.setVringNum, u32(7) + u32(256))
        odd += message(.setConfig, u32(4) + u32(8) + u32(0) + [UInt8](repeating: 1, count: 8))
        odd += message(.setVringCall, u64(0x100))
        return [("qemu-start", [0] + startUp), ("qemu-start-chunked", [13] + startUp), ("odd", [0x80] + odd)]
    }
}
