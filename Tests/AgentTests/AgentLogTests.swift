import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Agent

@Suite struct AgentLogTests {
    @Test func formatsLikeTheKernelConsole() {
        let line = AgentLog.format(level: .info, message: "listening on vsock://-1:1024", bootTimeNanos: 1_234_567_890)
        #expect(line == "[    1.234567] kata-agent INFO: listening on vsock://-1:1024\n")
        let late = AgentLog.format(level: .error, message: "x", bootTimeNanos: 123_456_000_001_000)
        #expect(late == "[123456.000001] kata-agent ERROR: x\n")
    }

    @Test func oneEventIsOneLine() {
        let line = AgentLog.format(level: .warning, message: "a\nb\n", bootTimeNanos: 0)
        #expect(line == "[    0.000000] kata-agent WARN: a b\n")
    }

    @Test func dropsLinesBelowTheThreshold() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let log = AgentLog(level: .info, fd: fds[1])
        log.debug("hidden")
        log.info("shown")
        log.level = .debug
        log.debug("now shown")
        close(fds[1])
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(fds[0], &buffer, buffer.count)
        let text = String(decoding: buffer[0..<max(0, n)], as: UTF8.self)
        #expect(!text.contains("hidden"))
        #expect(text.contains("INFO: shown\n"))
        #expect(text.contains("DEBUG: now shown\n"))
    }

    @Test func levelNames() {
        #expect(LogLevel(name: "DEBUG") == .debug)
        #expect(LogLevel(name: "warn") == .warning)
        #expect(LogLevel(name: "verbose") == nil)
    }
}

@Suite struct BootClockTests {
    @Test func initExecTimeComesFromTheKernelsRunInitRecord() {
        func ms(_ record: String) -> UInt64? { BootClock.initExecMilliseconds(kmsgRecord: ArraySlice(Array(record.utf8))) }
        #expect(ms("6,512,1620345,-;Run /init as init process\n") == 1620)
        #expect(ms("6,512,1620345,-,caller=T1;Run /sbin/init as init process\n with arguments:") == 1620)
        #expect(ms("6,513,1700000,-;Freeing unused kernel image (initmem) memory: 1234K\n") == nil)
        #expect(ms("6,512,x,-;Run /init as init process\n") == nil)
        #expect(ms("Run /init as init process") == nil)
        #expect(ms("6,512,1620345,-;Run /init as init process but not really\n") == nil)
    }

    @Test func theHostsKernelLogHasNoRecordOfOurInit() {
        // Not PID 1 of a fresh boot: either /dev/kmsg is readable and the record (if any) is the
        // host's own boot, long ago; or it is not readable. Either way no crash and no hang.
        if let ms = BootClock.initExecMilliseconds() { #expect(ms < BootClock.nanoseconds() / 1_000_000) }
    }
}
