import SystemSupport
import Testing

@testable import Hypervisor

#if canImport(Glibc)
import Glibc
#endif

/// Numbers for docs/performance.md; runs only with KS_HV_BENCH=1 (five boots take a while on a
/// shared machine). Prints the results; fails only if the echo itself fails.
@Suite(.serialized, .enabled(if: getenv("KS_HV_BENCH") != nil)) struct QEMUBenchmarkTests {
    @Test func spawnToFirstEchoAndRoundTripLatency() async throws {
        var boots: [Double] = []
        var rtts: [Double] = []
        for run in 0..<5 {
            let vm = QEMUHypervisor(config: try GuestFixture.config(name: "bench\(run)"))
            let t0 = ContinuousClock.now
            try await vm.start()
            let fd = try await vm.connectVsock(port: 1024, timeoutSeconds: 60)
            try fd.writeAll([0x42])
            #expect(try TestIO.read(fd, count: 1) == [0x42])
            boots.append(Self.seconds(ContinuousClock.now - t0))
            if run == 0 {
                let message = [UInt8](repeating: 7, count: 64)
                for _ in 0..<1000 {
                    let t = ContinuousClock.now
                    try fd.writeAll(message)
                    _ = try TestIO.read(fd, count: message.count)
                    rtts.append(Self.seconds(ContinuousClock.now - t) * 1e6)
                }
            }
            await vm.stop()
        }
        boots.sort()
        rtts.sort()
        print("BENCH qemu-tcg spawn->first vsock echo: median \(boots[2]) s, all \(boots)")
        print("BENCH vsock echo RTT 64 B x1000: median \(rtts[500]) us, p90 \(rtts[900]) us, p99 \(rtts[990]) us")
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
