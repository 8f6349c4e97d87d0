// One sandbox's metrics, in Kata's names where Kata has one (docs/observability.md): agent call
// latency, the shim's and the hypervisor's process (QEMU's, or the shim's own for the in-process
// VMM), the guest's memory, CPU and load from the agent (GetMetrics), the vsock and virtio-fs
// devices' traffic, and how long the VM took to boot. Rendered on each scrape; the shim serves it
// on `SandboxPaths.monitorSocket` and kata-ctl monitor adds the `sandbox_id` label.
//
// The guest is hostile: its answer is read for a fixed set of names only (an unknown meminfo field
// is ignored), so it cannot grow the registry or name a metric.

import AgentAPI
import Hypervisor
import Prometheus
import Synchronization
import SystemSupport
import TTRPC
import VirtIO
#if canImport(Glibc)
import Glibc
#endif

final class SandboxMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// The VM's device counters.
    let traffic: HypervisorTraffic

    init(traffic: HypervisorTraffic) {
        self.traffic = traffic
    }

    /// Agent call latency buckets in milliseconds: 1 ms to about 16 s (calls under TCG take
    /// hundreds of milliseconds; the longest wait for a process).
    static let latencyBuckets: [Double] = (0...14).map { Double(1 << $0) }

    /// The /proc/meminfo fields reported from the guest.
    static let meminfoItems: Set<String> = [
        "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "Active", "Inactive", "Active(anon)",
        "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked", "SwapTotal", "SwapFree", "Dirty",
        "Writeback", "AnonPages", "Mapped", "Shmem", "KReclaimable", "Slab", "SReclaimable", "SUnreclaim", "KernelStack",
        "PageTables", "CommitLimit", "Committed_AS", "VmallocUsed", "Percpu",
    ]

    /// Counters are totals read elsewhere (the devices' atomics, /proc's CPU time): what was
    /// already added to each, by name.
    private let added = Mutex<[String: Double]>([:])

    /// The VM's boot: from the hypervisor starting to the agent answering its health check.
    func recordBoot(seconds: Double) {
        gauge("kata_shim_vm_boot_duration_seconds", "Seconds from the hypervisor starting to the agent answering.").set(seconds)
    }

    /// Told of every agent call (the TTRPC client's observer).
    var agentCallObserver: TTRPCCallObserver {
        { [registry] requestName, duration, failed in
            let action = [("action", "grpc." + requestName)]
            let milliseconds = duration.milliseconds
            registry.makeValueHistogram(
                descriptor: Self.name("kata_shim_agent_rpc_durations_histogram_milliseconds", "Agent call latency distributions."),
                labels: action, buckets: Self.latencyBuckets
            ).record(milliseconds)
            if failed {
                registry.makeCounter(descriptor: Self.name("kata_shim_agent_rpc_errors_total", "Agent calls that failed."), labels: action)
                    .increment()
            }
        }
    }

    /// Reads everything now and renders the text. `guest` asks the agent (nil: the VM is gone).
    func render(hypervisorPID: Int32?, guest: () async -> Kata_Agent_V1_GuestMetrics?) async -> String {
        let shim = getpid()
        if let usage = ProcessUsage.read(pid: shim) { record(usage, prefix: "kata_shim", what: "the shim") }
        if let usage = ProcessUsage.read(pid: hypervisorPID ?? shim) { record(usage, prefix: "kata_hypervisor", what: "the hypervisor") }
        record(traffic)
        let metrics = await guest()
        gauge("kata_shim_agent_metrics_up", "1 when the agent answered GetMetrics for this scrape.").set(metrics == nil ? 0.0 : 1.0)
        if let metrics { record(metrics) }
        return registry.emitToString()
    }

    private func record(_ usage: ProcessUsage, prefix: String, what: String) {
        for (item, value) in usage.status {
            gauge("\(prefix)_proc_status", "Fields of /proc/<pid>/status of \(what) (kB as bytes).", [("item", item)]).set(Double(value))
        }
        for (item, value) in usage.ticks {
            gauge("\(prefix)_proc_stat", "CPU fields of /proc/<pid>/stat of \(what), clock ticks.", [("item", item)]).set(Double(value))
        }
        gauge("\(prefix)_threads", "Threads of \(what).").set(Double(usage.threads))
        gauge("\(prefix)_fds", "Open descriptors of \(what).").set(Double(usage.openDescriptors))
        gauge("\(prefix)_process_resident_memory_bytes", "Resident memory of \(what).").set(Double(usage.status["vmrss"] ?? 0))
        counter("\(prefix)_process_cpu_seconds_total", "User and system CPU time of \(what).", total: usage.cpuSeconds)
    }

    private func record(_ traffic: HypervisorTraffic) {
        let vsock = traffic.vsock.snapshot
        let fs = traffic.sharedDirectories.snapshot
        let packets = "Packets through the vsock device."
        counter("kata_hypervisor_vsock_packets_total", packets, [("direction", "from_guest")], count: vsock.fromGuestOperations)
        counter("kata_hypervisor_vsock_packets_total", packets, [("direction", "to_guest")], count: vsock.toGuestOperations)
        let bytes = "Payload bytes through the vsock device."
        counter("kata_hypervisor_vsock_bytes_total", bytes, [("direction", "from_guest")], count: vsock.fromGuestBytes)
        counter("kata_hypervisor_vsock_bytes_total", bytes, [("direction", "to_guest")], count: vsock.toGuestBytes)
        counter("kata_hypervisor_virtiofs_requests_total", "FUSE requests the guest sent over virtio-fs.", count: fs.fromGuestOperations)
        let fsBytes = "Bytes of FUSE requests and replies over virtio-fs."
        counter("kata_hypervisor_virtiofs_bytes_total", fsBytes, [("direction", "from_guest")], count: fs.fromGuestBytes)
        counter("kata_hypervisor_virtiofs_bytes_total", fsBytes, [("direction", "to_guest")], count: fs.toGuestBytes)
    }

    private func record(_ metrics: Kata_Agent_V1_GuestMetrics) {
        for (item, value) in metrics.meminfoBytes where Self.meminfoItems.contains(item) {
            gauge("kata_guest_meminfo", "Fields of the guest's /proc/meminfo (kB as bytes).", [("item", item)]).set(Double(value))
        }
        for (mode, seconds) in metrics.cpuSeconds where GuestCPUModes.all.contains(mode) {
            gauge("kata_guest_cpu_time", "The guest's CPU time by mode, seconds (/proc/stat).", [("cpu", "total"), ("item", mode)])
                .set(seconds)
        }
        gauge("kata_guest_load", "The guest's load average.", [("item", "load1")]).set(metrics.load1)
        let tasks = "The guest's scheduling entities (/proc/loadavg)."
        gauge("kata_guest_tasks", tasks, [("item", "running")]).set(Double(metrics.tasksRunning))
        gauge("kata_guest_tasks", tasks, [("item", "total")]).set(Double(metrics.tasksTotal))
        gauge("kata_agent_process_resident_memory_bytes", "Resident memory of the agent in the guest.").set(Double(metrics.agentRssBytes))
    }

    private func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: Self.name(name, help), labels: labels)
    }

    /// Brings counter `name` up to `total` (a total that never decreases; a smaller one is ignored).
    private func counter(_ name: String, _ help: String, _ labels: [(String, String)] = [], total: Double) {
        let counter = registry.makeCounter(descriptor: Self.name(name, help), labels: labels)
        let increment = delta(name, labels, total)
        if increment > 0 { counter.increment(by: increment) }
    }

    /// The same for a count, kept an integer in the text.
    private func counter(_ name: String, _ help: String, _ labels: [(String, String)] = [], count: UInt64) {
        let counter = registry.makeCounter(descriptor: Self.name(name, help), labels: labels)
        let increment = delta(name, labels, Double(count))
        if increment > 0 { counter.increment(by: Int64(increment)) }
    }

    private func delta(_ name: String, _ labels: [(String, String)], _ total: Double) -> Double {
        let key = name + labels.map { "\u{0}\($0.0)=\($0.1)" }.joined()
        return added.withLock { added -> Double in
            let delta = total - (added[key] ?? 0)
            guard delta > 0 else { return 0 }
            added[key] = total
            return delta
        }
    }

    static func name(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}

/// The modes of /proc/stat's cpu line the agent reports (proc(5)).
enum GuestCPUModes {
    static let all: Set<String> = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"]
}
