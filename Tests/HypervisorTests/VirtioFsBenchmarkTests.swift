import SystemSupport
import Testing

@testable import Hypervisor

#if canImport(Glibc)
import Glibc
#endif

/// virtio-fs throughput for docs/performance.md (runs only with KS_HV_BENCH=1): the same program
/// (guest-image/init/virtiofs-check.c) in the guest over virtio-fs and on the host, on the same
/// host directory. Prints the results and the ratios; fails only if a run fails.
@Suite(.serialized, .enabled(if: getenv("KS_HV_BENCH") != nil)) struct VirtioFsBenchmarkTests {
    static let mib = Int(getenv("KS_VFS_MIB").map { String(cString: $0) } ?? "") ?? 256
    static let files = Int(getenv("KS_VFS_FILES").map { String(cString: $0) } ?? "") ?? 2000

    @Test func guestVersusHostOnTheSameDirectory() async throws {
        raiseDescriptorLimit()
        let share = try VirtioFsGuestTests.makeShare("bench")
        defer { removeShare(share) }
        var config = try VirtioFsGuestTests.config(
            "bench", share: share, extras: ["KS_BENCH=\(Self.mib)", "KS_FILES=\(Self.files)"], memoryMiB: 512)
        if getenv("KS_VFS_DEBUG") != nil {
            config.debug = true
            config.consoleOutput = { bytes in _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) } }
        }
        let vm = QEMUHypervisor(config: config)
        let lines = try await VirtioFsGuestTests.run(vm, seconds: 1800)
        await vm.stop()
        let guestLine = try #require(lines.first { $0.hasPrefix("vfs: bench ") }, "console:\n\(vm.consoleTail)")
        print("BENCH virtio-fs guest (QEMU/TCG, \(Self.mib) MiB, \(Self.files) files): \(guestLine.dropFirst(11))")
        let hostOutput = try #require(
            GuestFixture.shell("\(VirtioFsFixture.hostProgram) bench \(share)/hostbench \(Self.mib) \(Self.files)"))
        let hostLine = try #require(hostOutput.split(separator: "\n").first { $0.hasPrefix("vfs: bench ") }.map(String.init))
        let guest = Self.parse(guestLine), host = Self.parse(hostLine)
        print("BENCH virtio-fs host (same dir): \(hostLine.dropFirst(11))")
        let ratios = zip(guest, host).map { (name: $0.0.name, ratio: $0.0.value / $0.1.value) }
        print("BENCH virtio-fs guest/host: " + ratios.map { "\($0.name) \(($0.ratio * 1000).rounded() / 1000)" }.joined(separator: " "))
        #expect(guest.count == 5 && host.count == 5)
    }

    /// "vfs: bench write W read R create C stat S delete D" -> [(name, value)].
    static func parse(_ line: String) -> [(name: String, value: Double)] {
        let words = line.split(separator: " ").dropFirst(2)
        return stride(from: words.startIndex, to: words.endIndex - 1, by: 2).compactMap { i in
            Double(words[i + 1]).map { (String(words[i]), $0) }
        }
    }
}
