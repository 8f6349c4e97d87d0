// The agent's StatsContainerResponse as containerd's cgroups v1 Metrics (what `ctr task metrics`
// and CRI read), encoded in an Any the way the task service's Stats hands it on.

import AgentAPI
import ContainerdAPI
import Shim

enum MetricsConversion {
    static let typeURL = "io.containerd.cgroups.v1.Metrics"

    static func metrics(from stats: Kata_Agent_V1_StatsContainerResponse) -> Io_Containerd_Cgroups_V1_Metrics {
        var metrics = Io_Containerd_Cgroups_V1_Metrics()
        metrics.pids.current = stats.pidsCurrent
        metrics.pids.limit = stats.pidsLimit
        metrics.cpu.usage.total = stats.cpuUsageNs
        metrics.cpu.usage.user = stats.cpuUserNs
        metrics.cpu.usage.kernel = stats.cpuSystemNs
        metrics.memory.usage.usage = stats.memoryUsageBytes
        metrics.memory.usage.limit = stats.memoryLimitBytes
        metrics.memory.usage.max = stats.memoryMaxUsageBytes
        metrics.memory.cache = stats.memoryCacheBytes
        metrics.memory.rss = stats.memoryRssBytes
        metrics.memory.totalCache = stats.memoryCacheBytes
        metrics.memory.totalRss = stats.memoryRssBytes
        metrics.memoryOomControl.oomKill = stats.oomKills
        return metrics
    }

    static func encoded(_ stats: Kata_Agent_V1_StatsContainerResponse) throws(RuntimeError) -> EncodedMetrics {
        do {
            return EncodedMetrics(typeURL: typeURL, value: try metrics(from: stats).serializedBytes())
        } catch {
            throw .invalidSpec("cannot encode metrics: \(error)")
        }
    }
}
