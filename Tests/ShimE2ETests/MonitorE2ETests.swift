// Metrics end to end: a pod runs through containerd and our shim, `kata-ctl monitor` gathers the
// host's sandboxes on a TCP port, and curl (a real HTTP client) scrapes it, and the shim's own
// endpoint on its Unix socket. Then the pod goes and nothing is left, the metrics socket included.

import Foundation
import Runtime
import Testing

@Suite(.serialized) struct MonitorE2ETests {
    /// The value of the first sample line starting with `prefix` (name and labels), or nil.
    static func value(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix) }
            .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
    }

    @Test(.timeLimit(.minutes(10)))
    func monitorGathersARunningPodForAPrometheusScrape() async throws {
        let containerd = try VMRuntimeE2ETests.start("vmmon")
        defer { containerd.stop(); rmdir(VMRuntimeE2ETests.sandboxRoot) }
        let run = try containerd.ctr(["run", "-d"] + VMRuntimeE2ETests.runtime + [VMRuntimeE2ETests.image, "mon1", "sleep", "600"])
        try #require(run.status == 0, "ctr said: \(run.stderr)")
        let exec = try containerd.ctr(["task", "exec", "--exec-id", "e1", "mon1", "sh", "-c", "cat /bin/busybox | wc -c"])
        #expect(exec.status == 0, "exec: \(exec.stdout) \(exec.stderr)")

        let kataCtl = URL(fileURLWithPath: shimBinaryPath()).deletingLastPathComponent().appendingPathComponent("kata-ctl").path
        let output = containerd.directory + "/monitor.out"
        let started = try runCommand(["sh", "-c", "'\(kataCtl)' monitor --listen 127.0.0.1:0 --sandbox-dir '\(VMRuntimeE2ETests.sandboxRoot)' > '\(output)' 2>&1 & echo $!"])
        let monitorPID = Int32(started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        try #require(monitorPID > 0)
        defer { kill(monitorPID, SIGTERM) }
        var url = ""
        #expect(waitUntil(seconds: 20) {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            guard let range = text.range(of: "http://127.0.0.1:"), let end = text[range.lowerBound...].firstIndex(of: " ") else { return false }
            url = String(text[range.lowerBound..<end])
            return true
        }, "kata-ctl monitor did not start: \((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")")
        try #require(url.hasSuffix("/metrics"))

        let scraped = try runCommand(["curl", "-sS", "--fail", "--max-time", "30", url])
        try #require(scraped.status == 0, "curl: \(scraped.stderr)")
        let text = scraped.stdout
        let pod = "{sandbox_id=\"mon1\""
        #expect(Self.value(text, "kata_monitor_running_shim_count") == 1)
        #expect(Self.value(text, "kata_monitor_scrape_failed_count") == 0)
        #expect((Self.value(text, "kata_shim_vm_boot_duration_seconds" + pod) ?? 0) > 0, "\(text)")
        #expect(Self.value(text, "kata_shim_agent_metrics_up" + pod) == 1)
        #expect(Self.value(text, "kata_shim_agent_rpc_durations_histogram_milliseconds_count" + pod + ",action=\"grpc.CreateContainerRequest\"}") == 1)
        #expect((Self.value(text, "kata_shim_agent_rpc_durations_histogram_milliseconds_count" + pod + ",action=\"grpc.ExecProcessRequest\"}") ?? 0) >= 1)
        #expect((Self.value(text, "kata_hypervisor_process_resident_memory_bytes" + pod) ?? 0) > Double(10 << 20))
        #expect((Self.value(text, "kata_hypervisor_process_cpu_seconds_total" + pod) ?? 0) > 0)
        #expect((Self.value(text, "kata_shim_process_resident_memory_bytes" + pod) ?? 0) > Double(1 << 20))
        #expect((Self.value(text, "kata_guest_meminfo" + pod + ",item=\"MemTotal\"}") ?? 0) > Double(64 << 20))
        #expect((Self.value(text, "kata_guest_cpu_time" + pod + ",cpu=\"total\",item=\"user\"}") ?? -1) >= 0)
        #expect((Self.value(text, "kata_guest_tasks" + pod + ",item=\"total\"}") ?? 0) > 1)
        #expect((Self.value(text, "kata_agent_process_resident_memory_bytes" + pod) ?? 0) > Double(1 << 20))
        #expect((Self.value(text, "kata_hypervisor_vsock_bytes_total" + pod + ",direction=\"from_guest\"}") ?? 0) > 0)
        #expect((Self.value(text, "kata_hypervisor_vsock_packets_total" + pod + ",direction=\"to_guest\"}") ?? 0) > 0)
        // The exec read busybox (about a megabyte) through the virtio-fs share.
        #expect((Self.value(text, "kata_hypervisor_virtiofs_requests_total" + pod) ?? 0) > 0)
        #expect((Self.value(text, "kata_hypervisor_virtiofs_bytes_total" + pod + ",direction=\"to_guest\"}") ?? 0) > 500_000)

        // The shim's own endpoint, where sandbox.info says it is.
        let record = try #require(SandboxRecord.read(sandboxRoot: VMRuntimeE2ETests.sandboxRoot + "/mon1"))
        let socket = try #require(record.monitorSocket)
        let direct = try runCommand(["curl", "-sS", "--fail", "--max-time", "30", "--unix-socket", socket, "http://localhost/metrics"])
        #expect(direct.status == 0 && direct.stdout.contains("kata_shim_threads "), "\(direct.stderr)")
        #expect(try runCommand(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", socket, "http://localhost/"]).stdout == "404")

        #expect(try containerd.ctr(["task", "kill", "-s", "SIGKILL", "mon1"]).status == 0)
        #expect(waitUntil(seconds: 30) { (try? containerd.ctr(["task", "ls"]).stdout.contains("STOPPED")) == true })
        _ = try containerd.ctr(["task", "delete", "mon1"])
        _ = try containerd.ctr(["containers", "delete", "mon1"])
        try VMRuntimeE2ETests.expectClean(containerd, ids: ["mon1"])
        #expect(access(socket, F_OK) != 0, "the metrics socket \(socket) is left")

        // With no sandbox left, the monitor still answers.
        let empty = try runCommand(["curl", "-sS", "--fail", "--max-time", "30", url])
        #expect(Self.value(empty.stdout, "kata_monitor_running_shim_count") == 0, "\(empty.stdout)")
    }
}
