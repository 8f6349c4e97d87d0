import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Agent

@Suite struct GuestFactsTests {
    static let meminfo = """
        MemTotal:       24589624 kB
        MemFree:        20000000 kB
        MemAvailable:   22000000 kB
        Buffers:           12345 kB
        """

    @Test func parsesMeminfoInBytes() throws {
        let memory = try GuestFactsReader.parseMeminfo(Self.meminfo)
        #expect(memory.total == 24_589_624 * 1024)
        #expect(memory.available == 22_000_000 * 1024)
    }

    @Test func meminfoErrorsNameTheField() {
        #expect(throws: GuestFactsError.meminfoFieldMissing("MemAvailable")) {
            try GuestFactsReader.parseMeminfo("MemTotal: 1 kB\n")
        }
        #expect(throws: GuestFactsError.meminfoFieldMissing("MemTotal")) {
            try GuestFactsReader.parseMeminfo("")
        }
        #expect(throws: GuestFactsError.self) { try GuestFactsReader.parseMeminfo("MemTotal: x kB\nMemAvailable: 1 kB") }
        #expect(throws: GuestFactsError.self) { try GuestFactsReader.parseMeminfo("MemTotal: 1 MB\nMemAvailable: 1 kB") }
        // Overflow when scaled to bytes.
        #expect(throws: GuestFactsError.self) {
            try GuestFactsReader.parseMeminfo("MemTotal: 18446744073709551615 kB\nMemAvailable: 1 kB")
        }
    }

    @Test func countsCPULists() throws {
        #expect(try GuestFactsReader.countCPUList("0\n") == 1)
        #expect(try GuestFactsReader.countCPUList("0-3") == 4)
        #expect(try GuestFactsReader.countCPUList("0-3,6,8-9\n") == 7)
    }

    @Test(arguments: ["", "\n", "a", "3-1", "0-", "-1", "0,,1", "0-4294967295"])
    func rejectsBadCPULists(_ text: String) {
        #expect(throws: GuestFactsError.self) { try GuestFactsReader.countCPUList(text) }
    }

    @Test func readsTheRunningKernel() throws {
        let facts = try GuestFactsReader.read()
        var names = utsname()
        #expect(uname(&names) == 0)
        let release = withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #expect(facts.kernelRelease == release)
        #expect(!facts.kernelVersion.isEmpty)
        #expect(facts.onlineCPUs == UInt32(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #expect(facts.memTotalBytes > 0 && facts.memAvailableBytes <= facts.memTotalBytes)
        #expect(facts.uptimeNanos > 0)
    }

    @Test func missingProcIsANamedError() {
        #expect(throws: GuestFactsError.self) { try GuestFactsReader.read(procRoot: "/nonexistent-proc") }
    }
}

@Suite struct GuestMetricsReaderTests {
    @Test func meminfoKeepsEveryFieldAndSkipsWhatItCannotRead() {
        let fields = GuestMetricsReader.parseMeminfo(
            "MemTotal:       1000 kB\nHugePages_Total:       4\nActive(anon):\t  12 kB\nbroken line\nMemFree: x kB\nHuge: 99999999999999999999 kB\n")
        #expect(fields == ["MemTotal": 1_024_000, "HugePages_Total": 4, "Active(anon)": 12 * 1024])
    }

    @Test func cpuLineInSeconds() {
        let stat = "cpu  100 0 50 1000 5 0 2 0 0 0\ncpu0 100 0 50 1000 5 0 2 0 0 0\nintr 1\n"
        let seconds = GuestMetricsReader.parseCPULine(stat, ticksPerSecond: 100)
        #expect(seconds["user"] == 1 && seconds["system"] == 0.5 && seconds["idle"] == 10 && seconds["softirq"] == 0.02)
        #expect(seconds.count == 10)
        #expect(GuestMetricsReader.parseCPULine("cpu  1 x 3\n", ticksPerSecond: 100).isEmpty)
        #expect(GuestMetricsReader.parseCPULine("intr 1\n", ticksPerSecond: 100).isEmpty)
    }

    @Test func loadavgAndRSS() {
        let load = GuestMetricsReader.parseLoadavg("0.25 0.10 0.05 2/83 1234\n")
        #expect(load?.load1 == 0.25 && load?.running == 2 && load?.total == 83)
        #expect(GuestMetricsReader.parseLoadavg("0.25 0.10\n") == nil)
        #expect(GuestMetricsReader.parseVmRSS("Name:\tagent\nVmRSS:\t    2048 kB\n") == 2 << 20)
        #expect(GuestMetricsReader.parseVmRSS("Name:\tkthread\n") == nil)
    }
}
