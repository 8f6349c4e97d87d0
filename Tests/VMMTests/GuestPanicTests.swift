import Testing
@testable import VMM

struct PanicDetectorTests {
    @Test func findsTheMessageAcrossChunksOnce() {
        var d = PanicDetector()
        #expect(d.feed(Array("[    7.5] Kernel pa".utf8)) == nil)
        #expect(d.feed(Array("nic - not syncing: Attempted to kill in".utf8)) == nil)
        #expect(d.feed(Array("it! exitcode=0x00000100\r\n".utf8)) == "Attempted to kill init! exitcode=0x00000100")
        #expect(d.feed(Array("Kernel panic - not syncing: again\n".utf8)) == nil)
    }

    @Test func ordinaryConsoleOutputIsNoPanic() {
        var d = PanicDetector()
        #expect(d.feed(Array("Run /init as init process\nKernel panic - not syncing\n".utf8)) == nil)
        #expect(d.feed(Array("panic=-1 reboot=k\n".utf8)) == nil)
    }

    @Test func aMessageWithoutAnEndIsCutAtTheLimit() {
        var d = PanicDetector()
        let long = Array("Kernel panic - not syncing: ".utf8) + [UInt8](repeating: 0x41, count: 10_000)
        #expect(d.feed(long) == String(repeating: "A", count: PanicDetector.messageLimit))
    }
}
