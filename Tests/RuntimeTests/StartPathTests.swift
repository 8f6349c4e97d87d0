// The start path's pieces: the agent's console line, /proc/PID/stat's start time, the log line.

import Testing
@testable import Runtime

@Suite struct StartPathTests {
    @Test func guestTimesComeFromTheAgentsLastReadyLine() {
        let console = """
            [    0.512000] virtio_blk virtio1: [vda] 55296 512-byte logical blocks
            [    1.700000] kata-agent INFO: ready after 9 ms (boot clock: init exec 1, main 2, listening 3 ms)
            [    1.933238] kata-agent INFO: ready after 184 ms (boot clock: init exec 1620 ms, main 1749 ms, listening 1933 ms)
            [    1.934016] kata-agent INFO: listening on vsock://-1:1024

            """
        #expect(StartPath.GuestTimes.parse(console: console) == .init(initExec: 1620, agentMain: 1749, listening: 1933))
        #expect(StartPath.GuestTimes.parse(console: "[ 1.0] kata-agent INFO: ready after 184 ms") == nil)
        #expect(StartPath.GuestTimes.parse(console: "boot clock: init exec 5 ms, main 6 ms") == nil)
        #expect(StartPath.GuestTimes.parse(console: "boot clock: init exec 5 ms, main 6 ms, listening 7 ms, 8") == nil)
    }

    @Test func startTicksAreField22EvenWhenTheNameHasSpacesAndParentheses() {
        let fields = (3...22).map { "\($0 == 22 ? 987_654 : $0)" }.joined(separator: " ")
        #expect(StartPath.startTicks(stat: "42 (a) b (c)) " + fields + " 23 24") == 987_654)
        #expect(StartPath.startTicks(stat: "42 (short) S 1 2") == nil)
        #expect(StartPath.startTicks(stat: "garbage") == nil)
    }

    @Test func stepsAreRelativeToThisProcessAndReportedOnce() throws {
        let path = StartPath()
        path.mark("configuration read")
        path.mark("container started")
        let steps = path.steps
        #expect(steps.map(\.name) == ["configuration read", "container started"])
        // This test process started before the test ran, and not in the future.
        #expect(steps[0].milliseconds > 0 && steps[0].milliseconds <= steps[1].milliseconds)
        let line = try #require(path.reportOnce())
        #expect(line.hasPrefix("start path (ms since the shim process started): configuration read "))
        #expect(line.contains(", container started ") && line.contains("; shim started at unix ms "))
        #expect(path.reportOnce() == nil)
        path.mark("later")
        #expect(path.steps.count == 2)
    }
}
