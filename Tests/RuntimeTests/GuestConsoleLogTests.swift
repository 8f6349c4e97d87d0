// The guest console's way into the shim's log: whole lines, split across appends as they come,
// carriage returns dropped, long lines cut, a flood bounded and counted.

import Logging
import Testing
@testable import Runtime

@Suite struct GuestConsoleLogTests {
    let log = GuestConsoleLog(logger: Logger(label: "test"), sandboxID: "s")

    @Test func linesSurviveAnySplitAndTheLastOneWaitsForItsNewline() {
        log.append(Array("[    0.1] Linux ver".utf8))
        log.append(Array("sion 6.1\r\n[    0.2] kata-agent INFO: ready\n[    0.3] part".utf8))
        #expect(log.takeLines() == ["[    0.1] Linux version 6.1", "[    0.2] kata-agent INFO: ready"])
        log.append(Array("ial line".utf8))
        #expect(log.takeLines().isEmpty)
        #expect(log.takeLines(flush: true) == ["[    0.3] partial line"])
        #expect(log.takeLines(flush: true).isEmpty)
    }

    @Test func aGuestCannotFloodTheLog() {
        log.append([UInt8](repeating: UInt8(ascii: "x"), count: GuestConsoleLog.maxLine * 2) + [10])
        log.append([UInt8](repeating: 10, count: GuestConsoleLog.maxPending))
        let lines = log.takeLines()
        #expect(lines.first?.count == GuestConsoleLog.maxLine)
        #expect(lines.last == "(\(GuestConsoleLog.maxLine * 2 + 1) bytes of console output dropped)")
        #expect(lines.count == 1 + (GuestConsoleLog.maxPending - GuestConsoleLog.maxLine * 2 - 1) + 1)
    }
}
