import AgentAPI
import Foundation
import Hypervisor
import Monitoring
import Testing

@testable import Runtime

@Suite struct ProcessUsageTests {
    @Test func statFieldsCountFromTheLastParenthesis() throws {
        // A command name with spaces and a ')' of its own.
        let stat = "1234 (qemu ) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 125 3 4 20 0 7 0 100 1000 200 0 0\n"
        let parsed = try #require(ProcessUsage.parseStat(stat))
        #expect(parsed.utime == 250 && parsed.stime == 125 && parsed.cutime == 3 && parsed.cstime == 4 && parsed.threads == 7)
        #expect(ProcessUsage.parseStat("1234 (x) S 1 2") == nil)
        #expect(ProcessUsage.parseStat("no parenthesis") == nil)
    }

    @Test func statusKeepsKataItemsInBytes() {
        let status = "Name:\tqemu\nVmRSS:\t  2048 kB\nRssAnon:\t 1024 kB\nThreads:\t5\nvoluntary_ctxt_switches:\t42\nVmFoo:\t1 kB\n"
        #expect(ProcessUsage.parseStatus(status) == ["vmrss": 2 << 20, "rssanon": 1 << 20, "voluntary_ctxt_switches": 42])
    }

    @Test func thisProcess() throws {
        let usage = try #require(ProcessUsage.read(pid: getpid()))
        #expect(usage.threads >= 1)
        #expect((usage.status["vmrss"] ?? 0) > 1 << 20)
        #expect(usage.openDescriptors >= 3)
        #expect(ProcessUsage.read(pid: Int32.max) == nil)
    }
}

@Suite struct SandboxMetricsTests {
    static func guestAnswer() -> Kata_Agent_V1_GuestMetrics {
        var metrics = Kata_Agent_V1_GuestMetrics()
        metrics.meminfoBytes = ["MemTotal": 128 << 20, "MemFree": 64 << 20, "Evil\"} 1\nkata_fake 9": 1]
        metrics.meminfoBytes.merge((0..<5000).map { ("Field\($0)", UInt64($0)) }) { a, _ in a }
        metrics.cpuSeconds = ["user": 1.5, "idle": 10, "bogus": 3]
        metrics.load1 = 0.5
        metrics.tasksRunning = 1
        metrics.tasksTotal = 40
        metrics.agentRssBytes = 9 << 20
        return metrics
    }

    @Test func aScrapeReportsHostGuestAndDevices() async throws {
        let traffic = HypervisorTraffic()
        traffic.vsock.countFromGuest(bytes: 100)
        traffic.vsock.countToGuest(bytes: 40)
        traffic.sharedDirectories.countFromGuest(bytes: 80)
        let metrics = SandboxMetrics(traffic: traffic)
        metrics.recordBoot(seconds: 1.25)
        metrics.agentCallObserver("CreateContainerRequest", .milliseconds(300), false)
        metrics.agentCallObserver("CreateContainerRequest", .milliseconds(3), true)
        let text = await metrics.render(hypervisorPID: nil) { Self.guestAnswer() }
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains("kata_shim_vm_boot_duration_seconds 1.25"))
        #expect(lines.contains("kata_shim_agent_rpc_durations_histogram_milliseconds_count{action=\"grpc.CreateContainerRequest\"} 2"))
        #expect(lines.contains("kata_shim_agent_rpc_errors_total{action=\"grpc.CreateContainerRequest\"} 1"))
        #expect(lines.contains("kata_hypervisor_vsock_bytes_total{direction=\"from_guest\"} 100"))
        #expect(lines.contains("kata_hypervisor_vsock_packets_total{direction=\"to_guest\"} 1"))
        #expect(lines.contains("kata_hypervisor_virtiofs_requests_total 1"))
        #expect(lines.contains("kata_guest_meminfo{item=\"MemTotal\"} 134217728.0"))
        #expect(lines.contains("kata_guest_cpu_time{cpu=\"total\",item=\"user\"} 1.5"))
        #expect(lines.contains("kata_guest_tasks{item=\"total\"} 40.0"))
        #expect(lines.contains("kata_shim_agent_metrics_up 1.0"))
        #expect(text.contains("kata_shim_process_resident_memory_bytes "))
        #expect(text.contains("kata_hypervisor_threads "))
        // What the guest named beyond the known fields is not in the text.
        #expect(!text.contains("kata_fake") && !text.contains("Field1") && !text.contains("bogus"))

        // Counters follow the devices' totals, never counting twice.
        traffic.vsock.countFromGuest(bytes: 50)
        let again = await metrics.render(hypervisorPID: nil) { nil }
        #expect(again.contains("kata_hypervisor_vsock_bytes_total{direction=\"from_guest\"} 150"))
        #expect(again.contains("kata_shim_agent_metrics_up 0.0"))
    }
}

@Suite struct HostMetricsTests {
    @Test func gathersLiveSandboxesWithTheirIDAndSkipsTheRest() async throws {
        let directory = "/tmp/ks-hostmetrics-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var endpoints: [MetricsEndpoint] = []
        for (id, value) in [("pod-a", 1), ("pod-b", 2)] {
            try FileManager.default.createDirectory(atPath: "\(directory)/\(id)", withIntermediateDirectories: true)
            let socket = "\(directory)/\(id)/shim-monitor.sock"
            endpoints.append(try await MetricsEndpoint.serve(unixSocket: socket) {
                "# HELP kata_shim_threads Threads.\n# TYPE kata_shim_threads gauge\nkata_shim_threads \(value)\n"
            })
            try SandboxRecord(shimPID: getpid(), backend: "qemu", vcpus: 1, memoryMiB: 128, kernel: "k", started: 1, monitorSocket: socket)
                .text.write(toFile: "\(directory)/\(id)/sandbox.info", atomically: true, encoding: .utf8)
        }
        // A sandbox whose shim is gone, one still booting, one whose endpoint is gone, and QEMU's socket directory.
        for id in ["dead", "booting", "silent", "vm-1"] {
            try FileManager.default.createDirectory(atPath: "\(directory)/\(id)", withIntermediateDirectories: true)
        }
        try SandboxRecord(shimPID: Int32.max, backend: "qemu", vcpus: 1, memoryMiB: 128, kernel: "k", started: 1,
                          monitorSocket: "\(directory)/dead/x.sock").text.write(toFile: "\(directory)/dead/sandbox.info", atomically: true, encoding: .utf8)
        try SandboxRecord(shimPID: getpid(), backend: "qemu", vcpus: 1, memoryMiB: 128, kernel: "k", started: 1,
                          monitorSocket: "\(directory)/silent/x.sock").text.write(toFile: "\(directory)/silent/sandbox.info", atomically: true, encoding: .utf8)

        let monitor = HostMetrics(sandboxDirectory: directory, scrapeTimeout: .seconds(2))
        #expect(monitor.sandboxes().map(\.id) == ["pod-a", "pod-b", "silent"])
        let text = await monitor.render()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("kata_monitor_running_shim_count 3.0"))
        #expect(lines.contains("kata_monitor_scrape_failed_count 1"))
        #expect(lines.contains("kata_shim_threads{sandbox_id=\"pod-a\"} 1"))
        #expect(lines.contains("kata_shim_threads{sandbox_id=\"pod-b\"} 2"))
        #expect(lines.filter { $0 == "# TYPE kata_shim_threads gauge" }.count == 1)
        for endpoint in endpoints { await endpoint.close() }
    }
}
