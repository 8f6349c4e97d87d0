// The guest's numbers for GetMetrics (the shim's metrics endpoint): every /proc/meminfo line, the
// whole-guest CPU times of /proc/stat, /proc/loadavg, and the agent's own resident set. The parsers
// are pure functions over the files' text; a line they do not understand is skipped, not fatal:
// a newer kernel may add fields, and a metrics scrape must not fail on them.

import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// What GetMetrics reports, independent of the wire type.
public struct GuestMetricsSnapshot: Sendable, Equatable {
    /// /proc/meminfo by field; lines in kB as bytes, counts (HugePages_Total...) as they are.
    public var meminfoBytes: [String: UInt64] = [:]
    /// The "cpu" line of /proc/stat, seconds per mode.
    public var cpuSeconds: [String: Double] = [:]
    public var load1: Double = 0
    public var tasksRunning: UInt32 = 0
    public var tasksTotal: UInt32 = 0
    public var agentRSSBytes: UInt64 = 0
}

public enum GuestMetricsReader {
    /// The modes of /proc/stat's cpu line, in the kernel's order (proc(5)).
    static let cpuModes = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"]

    /// Reads the running guest. A file that cannot be read leaves its fields empty.
    public static func read(procRoot: String = "/proc") -> GuestMetricsSnapshot {
        var snapshot = GuestMetricsSnapshot()
        if let text = try? readWholeTextFile(procRoot + "/meminfo", limit: 1 << 20) { snapshot.meminfoBytes = parseMeminfo(text) }
        let ticks = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        if let text = try? readWholeTextFile(procRoot + "/stat", limit: 1 << 20) { snapshot.cpuSeconds = parseCPULine(text, ticksPerSecond: ticks) }
        if let text = try? readWholeTextFile(procRoot + "/loadavg", limit: 1 << 20), let load = parseLoadavg(text) {
            (snapshot.load1, snapshot.tasksRunning, snapshot.tasksTotal) = load
        }
        if let text = try? readWholeTextFile(procRoot + "/self/status", limit: 1 << 20) { snapshot.agentRSSBytes = parseVmRSS(text) ?? 0 }
        return snapshot
    }

    /// Every `Name:   value [kB]` line of /proc/meminfo.
    public static func parseMeminfo(_ text: String) -> [String: UInt64] {
        var fields: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let words = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard !name.isEmpty, let value = words.first.flatMap({ UInt64($0) }) else { continue }
            if words.count == 2 && words[1] == "kB" {
                guard value <= UInt64.max / 1024 else { continue }
                fields[name] = value * 1024
            } else if words.count == 1 {
                fields[name] = value
            }
        }
        return fields
    }

    /// The first line of /proc/stat, `cpu  user nice system idle ...` in clock ticks, as seconds.
    public static func parseCPULine(_ text: String, ticksPerSecond: Double) -> [String: Double] {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return [:] }
        var seconds: [String: Double] = [:]
        for (mode, word) in zip(cpuModes, line.split(separator: " ").dropFirst()) {
            guard let ticks = UInt64(word) else { return [:] }
            seconds[mode] = Double(ticks) / ticksPerSecond
        }
        return seconds
    }

    /// `0.15 0.10 0.05 1/83 1234`: the 1-minute load and running/total scheduling entities.
    public static func parseLoadavg(_ text: String) -> (load1: Double, running: UInt32, total: UInt32)? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count >= 4, let load1 = Double(words[0]) else { return nil }
        let tasks = words[3].split(separator: "/")
        guard tasks.count == 2, let running = UInt32(tasks[0]), let total = UInt32(tasks[1]) else { return nil }
        return (load1, running, total)
    }

    /// VmRSS of a /proc/<pid>/status text, in bytes.
    public static func parseVmRSS(_ text: String) -> UInt64? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst()
        guard words.count == 2, words.last == "kB", let kib = words.first.flatMap({ UInt64($0) }), kib <= UInt64.max / 1024
        else { return nil }
        return kib * 1024
    }
}
