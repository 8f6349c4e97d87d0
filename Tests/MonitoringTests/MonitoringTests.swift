import Foundation
import Synchronization
import Testing

@testable import Monitoring

@Suite struct ExpositionTests {
    static let shimA = """
        # HELP kata_shim_threads Threads of the shim.
        # TYPE kata_shim_threads gauge
        kata_shim_threads 12
        # HELP kata_shim_agent_rpc_durations_histogram_milliseconds Agent call latency distributions.
        # TYPE kata_shim_agent_rpc_durations_histogram_milliseconds histogram
        kata_shim_agent_rpc_durations_histogram_milliseconds_bucket{action="grpc.CheckRequest",le="1.0"} 0
        kata_shim_agent_rpc_durations_histogram_milliseconds_bucket{action="grpc.CheckRequest",le="+Inf"} 1
        kata_shim_agent_rpc_durations_histogram_milliseconds_sum{action="grpc.CheckRequest"} 3.5
        kata_shim_agent_rpc_durations_histogram_milliseconds_count{action="grpc.CheckRequest"} 1

        """

    @Test func familiesKeepHistogramSeriesTogether() {
        let families = Exposition.families(Self.shimA)
        #expect(families.map(\.name) == ["kata_shim_threads", "kata_shim_agent_rpc_durations_histogram_milliseconds"])
        #expect(families[1].type == "histogram")
        #expect(families[1].samples.count == 4)
        #expect(families[0].help == "Threads of the shim.")
    }

    @Test func labelGoesFirstWithOrWithoutOtherLabels() {
        #expect(Exposition.addingLabel("sandbox_id", "p1", to: "kata_shim_threads 12") == "kata_shim_threads{sandbox_id=\"p1\"} 12")
        #expect(Exposition.addingLabel("sandbox_id", "p1", to: "m{} 1") == "m{sandbox_id=\"p1\"} 1")
        #expect(Exposition.addingLabel("sandbox_id", "p1", to: "m{a=\"b\"} 1 1700000000")
            == "m{sandbox_id=\"p1\",a=\"b\"} 1 1700000000")
        #expect(Exposition.addingLabel("s", "a\"b\\c\nd", to: "m 1") == "m{s=\"a\\\"b\\\\c\\nd\"} 1")
        #expect(Exposition.addingLabel("s", "x", to: "9bad 1") == nil)
        #expect(Exposition.addingLabel("s", "x", to: "nospace") == nil)
    }

    @Test func mergeDeclaresEachFamilyOnceWithEverySandboxsSamples() {
        let shimB = Self.shimA.replacingOccurrences(of: "kata_shim_threads 12", with: "kata_shim_threads 7")
        let own = "# HELP kata_monitor_running_shim_count Shims.\n# TYPE kata_monitor_running_shim_count gauge\nkata_monitor_running_shim_count 2\n"
        let merged = Exposition.merge([(own, nil), (Self.shimA, ("sandbox_id", "a")), (shimB, ("sandbox_id", "b"))])
        let lines = merged.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0 == "# TYPE kata_shim_threads gauge" }.count == 1)
        #expect(lines.filter { $0.hasPrefix("# HELP kata_shim_agent_rpc_durations_histogram_milliseconds ") }.count == 1)
        #expect(lines.contains("kata_monitor_running_shim_count 2"))
        let threads = lines.firstIndex(of: "# TYPE kata_shim_threads gauge")!
        #expect(lines[threads + 1] == "kata_shim_threads{sandbox_id=\"a\"} 12")
        #expect(lines[threads + 2] == "kata_shim_threads{sandbox_id=\"b\"} 7")
        #expect(lines.filter { $0.contains("_count{sandbox_id=") }.count == 2)
        // Every sample line of the merged text parses back into the same families.
        #expect(Exposition.families(merged).map(\.name)
            == ["kata_monitor_running_shim_count", "kata_shim_threads", "kata_shim_agent_rpc_durations_histogram_milliseconds"])
    }

    @Test func garbageLinesAreDropped() {
        let families = Exposition.families("# TYPE\n# HELP 1x y\n{a=\"b\"} 1\nok 1\n\n# random comment\n")
        #expect(families.map(\.name) == ["ok"])
    }
}

@Suite struct MetricsEndpointTests {
    static func socketPath() -> String { "/tmp/ks-metrics-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock" }

    @Test func scrapeOverAUnixSocketGetsTheRenderedText() async throws {
        let path = Self.socketPath()
        let calls = Counter()
        let endpoint = try await MetricsEndpoint.serve(unixSocket: path) {
            "# TYPE m counter\nm \(calls.next())\n"
        }
        #expect(try await MetricsScrape.get(unixSocket: path) == "# TYPE m counter\nm 1\n")
        #expect(try await MetricsScrape.get(unixSocket: path) == "# TYPE m counter\nm 2\n")
        await endpoint.close()
        unlink(path)
        await #expect(throws: ScrapeError.self) { try await MetricsScrape.get(unixSocket: path, timeout: .seconds(1)) }
    }

    @Test func otherPathsAndMethodsAreRefusedOverTCP() async throws {
        let endpoint = try await MetricsEndpoint.serve(host: "127.0.0.1", port: 0) { "m 1\n" }
        let port = try #require(endpoint.port)
        func request(_ text: String) throws -> String {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(connected == 0)
            // A server that keeps the connection open fails the test instead of hanging it.
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            _ = text.withCString { write(fd, $0, strlen($0)) }
            var reply = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n < 0 { Issue.record("no end of response to \(text.prefix(20)): \(String(decoding: reply, as: UTF8.self))") }
                if n <= 0 { break }
                reply += buffer[0..<n]
            }
            return String(decoding: reply, as: UTF8.self)
        }
        let ok = try request("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200 OK"))
        #expect(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"))
        #expect(ok.hasSuffix("\r\n\r\nm 1\n"))
        #expect(try request("GET / HTTP/1.1\r\nHost: a\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        #expect(try request("POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").hasPrefix("HTTP/1.1 405"))
        #expect(try request("NOT HTTP AT ALL\r\n\r\n").hasPrefix("HTTP/1.1 400"))
        await endpoint.close()
    }

    @Test func aPeerThatNeverAnswersTimesOut() async throws {
        let path = Self.socketPath()
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0 && listen(listener, 1) == 0)
        let started = ContinuousClock.now
        await #expect(throws: ScrapeError.self) { try await MetricsScrape.get(unixSocket: path, timeout: .milliseconds(300)) }
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}

final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int { value.withLock { $0 += 1; return $0 } }
}
