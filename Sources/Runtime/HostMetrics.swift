// Every sandbox on this host in one exposition, as Kata's kata-monitor gives it: the sandboxes are
// the directories under sandbox_dir whose record names a live shim and its metrics socket; each is
// scraped at once (5 s deadline), its samples get `sandbox_id`, and the families are merged. The
// monitor's own numbers come first: shims found, scrapes, failures, scrape latency.

import Monitoring
import Prometheus
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

public final class HostMetrics: Sendable {
    public let sandboxDirectory: String
    private let registry = PrometheusCollectorRegistry()
    private let scrapeTimeout: Duration

    public init(sandboxDirectory: String, scrapeTimeout: Duration = .seconds(5)) {
        self.sandboxDirectory = sandboxDirectory
        self.scrapeTimeout = scrapeTimeout
    }

    /// The sandboxes to scrape: id and metrics socket of each live shim's sandbox.
    public func sandboxes() -> [(id: String, socket: String)] {
        SandboxRecord.list(sandboxDirectory: sandboxDirectory).compactMap { id, record in
            guard let record, let socket = record.monitorSocket, kill(record.shimPID, 0) == 0 else { return nil }
            return (id, socket)
        }
    }

    /// Scrapes every sandbox now and renders the whole text.
    public func render() async -> String {
        let targets = sandboxes()
        let timeout = scrapeTimeout
        let results = await withTaskGroup(of: (String, Result<String, ScrapeError>, Duration).self) { group in
            for (id, socket) in targets {
                group.addTask {
                    let started = ContinuousClock.now
                    do throws(ScrapeError) {
                        let text = try await MetricsScrape.get(unixSocket: socket, timeout: timeout)
                        return (id, .success(text), ContinuousClock.now - started)
                    } catch {
                        return (id, .failure(error), ContinuousClock.now - started)
                    }
                }
            }
            var all: [(String, Result<String, ScrapeError>, Duration)] = []
            for await result in group { all.append(result) }
            return all.sorted { $0.0 < $1.0 }
        }
        let name = { (name: String, help: String) in MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }
        registry.makeGauge(descriptor: name("kata_monitor_running_shim_count", "Sandboxes whose shim runs on this host.")).set(Double(targets.count))
        registry.makeCounter(descriptor: name("kata_monitor_scrape_count", "Scrapes of the monitor's endpoint.")).increment()
        let failed = registry.makeCounter(descriptor: name("kata_monitor_scrape_failed_count", "Shim scrapes that failed."))
        let latency = registry.makeValueHistogram(
            descriptor: name("kata_monitor_scrape_durations_histogram_milliseconds", "How long each shim took to answer."),
            buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000])
        var texts: [(text: String, label: (name: String, value: String)?)] = []
        for (id, result, duration) in results {
            latency.record(duration.milliseconds)
            switch result {
            case .success(let text): texts.append((text, ("sandbox_id", id)))
            case .failure: failed.increment()
            }
        }
        return Exposition.merge([(registry.emitToString(), nil)] + texts)
    }
}
