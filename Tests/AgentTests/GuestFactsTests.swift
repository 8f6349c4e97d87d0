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
