// Log lines a guest triggers at will are rate-limited: a guest kicking a broken queue in a loop
// gets a handful of lines into the host log, not one per kick.

import Devices
import FUSE
import Foundation
import GuestMemory
import Logging
import Synchronization
import Testing
import VirtIO
import VirtIOTestSupport

/// A LogHandler that keeps every message it is given.
struct CapturingLogHandler: LogHandler {
    let lines: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        lines.append(message.description)
    }
}

final class LogLines: Sendable {
    private let storage = Mutex<[String]>([])
    var all: [String] { storage.withLock { $0 } }
    func append(_ line: String) { storage.withLock { $0.append(line) } }
    var logger: Logger { Logger(label: "test") { _ in CapturingLogHandler(lines: self) } }
}

@Suite struct GuestLogLimiterTests {
    let memory = HeapGuestMemory(size: 0x80000)
    let interrupt = RecordingInterruptTrigger()
    let kicks = 1000

    /// Breaks the queue on `driver` (a descriptor past the end of memory) and kicks it `kicks` times.
    func kickBroken(_ device: some VirtioDevice, queue: Int, driver: FakeVirtqueueDriver) throws {
        try driver.writeDescriptor(.init(address: 0x7fff0, length: 0x100, flags: DescriptorFlag.write, next: 0), at: 0)
        try driver.publish(head: 0)
        for _ in 0..<kicks { device.queueNotified(queue) }
    }

    @Test func rngBrokenQueueKickedInALoop() throws {
        let lines = LogLines()
        let device = RngDevice(logger: lines.logger)
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        device.queues = [driver.makeQueue(maxSize: RngDevice.queueSize)]
        try device.activate(memory: memory, interrupt: interrupt)
        try kickBroken(device, queue: 0, driver: driver)
        #expect(lines.all.count == GuestLogLimiter.defaultBurst)
    }

    @Test func vsockBrokenQueueKickedInALoop() throws {
        let lines = LogLines()
        let device = VsockDevice(guestCID: 3, backend: VsockMuxer(), logger: lines.logger)
        let drivers = try (0..<3).map { try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000 + 0x10000 * UInt64($0))) }
        device.queues = drivers.map { $0.makeQueue(maxSize: VsockDevice.queueSize) }
        try device.activate(memory: memory, interrupt: interrupt)
        try kickBroken(device, queue: VsockDevice.QueueIndex.tx.rawValue, driver: drivers[1])
        #expect(lines.all.count == GuestLogLimiter.defaultBurst)
    }

    @Test func virtioFsBrokenQueueKickedInALoop() throws {
        let lines = LogLines()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loglimit-\(getpid())").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = FUSEServer(fileSystem: try PassthroughFileSystem(PassthroughConfiguration(root: root)))
        let device = try VirtioFsDevice(tag: "t", server: server, logger: lines.logger)
        let drivers = try (0..<2).map { try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000 + 0x10000 * UInt64($0))) }
        device.queues = drivers.map { $0.makeQueue(maxSize: VirtioFsDevice.queueSize) }
        try device.activate(memory: memory, interrupt: interrupt)
        try kickBroken(device, queue: 1, driver: drivers[1])
        #expect(lines.all.count == GuestLogLimiter.defaultBurst)
    }

    @Test func aNewIntervalReportsWhatWasSuppressed() {
        let lines = LogLines()
        let clock = Mutex(ContinuousClock.now)
        var limiter = GuestLogLimiter(burst: 2, interval: .seconds(10), now: { clock.withLock { $0 } })
        for i in 0..<5 { limiter.log(lines.logger, .warning, "line \(i)") }
        #expect(lines.all == ["line 0", "line 1"])
        clock.withLock { $0 = $0.advanced(by: .seconds(11)) }
        limiter.log(lines.logger, .warning, "line 5")
        limiter.log(lines.logger, .warning, "line 6")
        limiter.log(lines.logger, .warning, "line 7")
        #expect(lines.all == ["line 0", "line 1", "line 5 (3 similar lines suppressed)", "line 6"])
    }
}
