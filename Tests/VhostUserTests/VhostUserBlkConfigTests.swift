import Devices
import Foundation
import Testing
import VhostUser
import VirtIO

/// What QEMU's vhost-user-blk asks of our blk device before the guest runs: the features (RO
/// among them) and the configuration, with GET_CONFIG of the length QEMU computes from the
/// features it might offer (up to the whole struct).
@Suite struct VhostUserBlkConfigTests {
    @Test func featuresAndConfigOfAnyLengthUpToTheWholeStruct() throws {
        let path = NSTemporaryDirectory() + "kata-blk-config-\(getpid()).img"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(count: 2048 * 512)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let device = BlkDevice(backend: try FileBlockBackend(path: path))
        let session = VhostUserSession(device: device, queueCount: 1, platform: FakePlatform())
        let features = try #require(try session.handle(VhostUserMessage(.getFeatures))?.payload)
        let offered = features.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
        #expect(offered & BlkFeature.readOnly != 0 && offered & VirtioFeature.version1 != 0)
        for size in [24, 57, 60, BlkDevice.configSize] {
            let request = bytes(UInt32(0)) + bytes(UInt32(size)) + bytes(UInt32(0)) + Array(repeating: 0, count: size)
            let reply = try #require(try session.handle(VhostUserMessage(.getConfig, payload: request))?.payload)
            #expect(reply.count == 12 + size)
            let config = Array(reply[12...])
            #expect(config[0..<8] == bytes(UInt64(2048))[...], "capacity, \(size) bytes asked")
            #expect(config[12..<16] == bytes(BlkDevice.segmentMax)[...] && config[20..<24] == bytes(UInt32(512))[...])
        }
        let tooLong = bytes(UInt32(0)) + bytes(UInt32(BlkDevice.configSize + 1)) + bytes(UInt32(0)) + Array(repeating: 0, count: BlkDevice.configSize + 1)
        #expect(throws: VhostUserError.badConfigRange(offset: 0, size: UInt32(BlkDevice.configSize + 1))) {
            _ = try session.handle(VhostUserMessage(.getConfig, payload: tooLong))
        }
    }
}
