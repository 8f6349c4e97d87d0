import ArgumentParser
import Dispatch
import Foundation
import Monitoring
import Runtime

/// `kata-ctl monitor`: Kata's kata-monitor. One Prometheus endpoint (GET /metrics) with the
/// metrics of every sandbox on this host, each sample labelled with its `sandbox_id`, gathered
/// from the shims' own endpoints on each scrape (docs/observability.md).
struct MonitorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Serve the metrics of every sandbox on this host on one Prometheus endpoint.")

    @Option(help: "The address to listen on, HOST:PORT (port 0: any free port, printed).")
    var listen = "127.0.0.1:8090"

    @OptionGroup var location: SandboxDirectoryOptions

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port)
        else {
            FileHandle.standardError.write(Data("kata-ctl monitor: --listen \(listen): give HOST:PORT, e.g. 127.0.0.1:8090\n".utf8))
            throw ExitCode(2)
        }
        let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let directory = try location.resolve(for: "monitor")
        let monitor = HostMetrics(sandboxDirectory: directory)
        let endpoint: MetricsEndpoint
        do {
            endpoint = try await MetricsEndpoint.serve(host: host, port: port) { await monitor.render() }
        } catch {
            FileHandle.standardError.write(Data("kata-ctl monitor: cannot listen on \(listen): \(error)\n".utf8))
            throw ExitCode(1)
        }
        // Unbuffered: whoever started the monitor learns the port at once.
        FileHandle.standardOutput.write(
            Data("kata-ctl monitor: serving http://\(host):\(endpoint.port ?? port)/metrics for the sandboxes in \(directory)\n".utf8))
        await Self.waitForTermination()
        await endpoint.close()
    }

    /// Returns on SIGTERM or SIGINT.
    static func waitForTermination() async {
        let (ended, end) = AsyncStream<Void>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { end.yield() }
            source.resume()
            sources.append(source)
        }
        for await _ in ended { break }
        sources.forEach { $0.cancel() }
    }
}
