// The real kata-agent binary on the host (not PID 1: it mounts nothing, never reboots), serving
// ttrpc on a Unix socket, called with the generated typed clients.

import Agent
import AgentAPI
import Foundation
import SwiftProtobuf
import TTRPC
import Testing

@Suite struct AgentOverSocketTests {
    /// Starts the agent on a fresh Unix socket and connects a client to it.
    static func startAgent(extraArguments: [String] = []) async throws -> (WatchedProcess, TTRPCClient, String) {
        let socket = AgentBinaries.socketPath()
        let agent = try WatchedProcess(
            executable: try AgentBinaries.debugAgent(),
            arguments: ["--listen", "unix://\(socket)", "--log-level", "debug"] + extraArguments)
        try #require(await agent.waitForLine(containing: "listening on unix://\(socket)"))
        let client = try await TTRPCClient.connect(unixSocketPath: socket)
        return (agent, client, socket)
    }

    @Test func healthCheckAndVersion() async throws {
        let (agent, client, socket) = try await Self.startAgent()
        let health = Kata_Agent_V1_HealthClient(client)
        let check = try await health.check(Kata_Agent_V1_CheckRequest())
        #expect(check.status == .serving)
        let version = try await health.version(Kata_Agent_V1_CheckRequest())
        #expect(version.apiVersion == AgentVersion.api)
        #expect(version.agentVersion == AgentVersion.agent)
        await client.close()
        #expect(await agent.stop() == 0)
        #expect(agent.log.contains("stopped"))
        #expect(!FileManager.default.fileExists(atPath: socket), "socket file left behind")
    }

    @Test func listensOnARealVsockSocket() async throws {
        // This host has AF_VSOCK (a virtio transport): binding works even though nothing can
        // connect back to it here. Both listeners at once, as a debug setup would have them.
        let socket = AgentBinaries.socketPath()
        let port = UInt32.random(in: 20_000...60_000)
        let agent = try WatchedProcess(
            executable: try AgentBinaries.debugAgent(),
            arguments: ["--listen", "vsock://-1:\(port)", "--listen", "unix://\(socket)"])
        try #require(await agent.waitForLine(containing: "listening on unix://\(socket)"))
        #expect(agent.log.contains("listening on vsock://-1:\(port)\n"))
        let client = try await TTRPCClient.connect(unixSocketPath: socket)
        #expect(try await Kata_Agent_V1_HealthClient(client).check(Kata_Agent_V1_CheckRequest()).status == .serving)
        await client.close()
        #expect(await agent.stop() == 0)
    }

    @Test func guestDetailsMatchTheHost() async throws {
        let (agent, client, _) = try await Self.startAgent()
        let before = BootClock.nanoseconds()
        let details = try await Kata_Agent_V1_AgentServiceClient(client).getGuestDetails(Kata_Agent_V1_GuestDetailsRequest())
        let after = BootClock.nanoseconds()

        var names = utsname()
        #expect(uname(&names) == 0)
        #expect(details.kernelRelease == Self.field(names.release))
        #expect(details.kernelVersion == Self.field(names.version))

        // The host's /proc/meminfo, read here independently of the agent's parser.
        let meminfo = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        func kB(_ key: String) -> UInt64? {
            meminfo.split(separator: "\n").first { $0.hasPrefix(key + ":") }
                .flatMap { UInt64($0.split(separator: " ")[1]) }
                .map { $0 * 1024 }
        }
        #expect(details.memTotalBytes == kB("MemTotal"))
        let available = try #require(kB("MemAvailable"))
        let drift = details.memAvailableBytes > available ? details.memAvailableBytes - available : available - details.memAvailableBytes
        #expect(drift < 512 << 20, "MemAvailable \(details.memAvailableBytes) vs \(available)")

        #expect(details.onlineCpus == UInt32(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #expect(details.agentVersion == AgentVersion.agent)
        #expect(details.uptimeNs >= before && details.uptimeNs <= after)
        #expect(details.initStartedNs > 0 && details.initStartedNs < before)
        await client.close()
        #expect(await agent.stop() == 0)
    }

    @Test func metricsDescribeTheMachineTheAgentRunsOn() async throws {
        let (agent, client, _) = try await Self.startAgent()
        let metrics = try await Kata_Agent_V1_AgentServiceClient(client).getMetrics(Kata_Agent_V1_GetMetricsRequest())
        let meminfo = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let memTotal = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } }
        #expect(metrics.meminfoBytes["MemTotal"] == memTotal.map { $0 * 1024 })
        #expect(metrics.meminfoBytes.count > 20, "\(metrics.meminfoBytes.keys.sorted())")
        #expect(Set(metrics.cpuSeconds.keys).isSuperset(of: ["user", "system", "idle"]))
        #expect((metrics.cpuSeconds["idle"] ?? 0) > 0)
        #expect(metrics.tasksTotal > 0 && metrics.tasksRunning <= metrics.tasksTotal)
        #expect(metrics.agentRssBytes > 1 << 20 && metrics.agentRssBytes < 200 << 20, "agent RSS \(metrics.agentRssBytes)")
        #expect(metrics.uptimeNs > 0)
        await client.close()
        #expect(await agent.stop() == 0)
    }

    @Test func networkMethodsAnswerWithoutChangingTheHost() async throws {
        // Read-only calls, and requests refused before anything changes: this agent runs in the
        // host's network namespace (the real configuration is tested in scratch namespaces,
        // Tests/NetlinkTests/GuestNetworkTests).
        let (agent, client, _) = try await Self.startAgent()
        let service = Kata_Agent_V1_AgentServiceClient(client)
        let interfaces = try await service.listInterfaces(Kata_Agent_V1_ListInterfacesRequest())
        #expect(interfaces.interfaces.contains { $0.name == "lo" && $0.addresses.contains { $0.address == "127.0.0.1" } })
        _ = try await service.listRoutes(Kata_Agent_V1_ListRoutesRequest())

        func expectCode(_ code: TTRPCStatusCode, _ method: String, _ call: () async throws -> Void) async {
            do {
                try await call()
                Issue.record("\(method) succeeded")
            } catch let error as TTRPCError {
                #expect(error.code == code, "\(method): \(error)")
                #expect(error.message.contains(method), "\(error)")
            } catch {
                Issue.record("\(method): \(error)")
            }
        }
        // No interface in the request.
        await expectCode(.invalidArgument, "UpdateInterface") {
            _ = try await client.call(service: "kata.agent.v1.AgentService", method: "UpdateInterface", payload: [])
        }
        var update = Kata_Agent_V1_UpdateInterfaceRequest()
        update.interface.hwAddr = "02:6b:73:ff:ff:fe"
        update.interface.name = "ks-none-\(getpid() % 10000)"
        await expectCode(.notFound, "UpdateInterface") { _ = try await service.updateInterface(update) }
        var routes = Kata_Agent_V1_UpdateRoutesRequest()
        var route = Kata_Agent_V1_Route()
        route.destination = "192.0.2.0/24"
        route.device = "ks-none-\(getpid() % 10000)"
        routes.routes.routes = [route]
        await expectCode(.notFound, "UpdateRoutes") { _ = try await service.updateRoutes(routes) }
        var neighbors = Kata_Agent_V1_AddARPNeighborsRequest()
        var neighbor = Kata_Agent_V1_ARPNeighbor()
        neighbor.toIpAddress.address = "192.0.2.1"
        neighbor.lladdr = "not-a-mac"
        neighbor.device = "lo"
        neighbors.neighbors.neighbors = [neighbor]
        await expectCode(.invalidArgument, "AddARPNeighbors") { _ = try await service.addARPNeighbors(neighbors) }
        // The container API answers, with a clear error for an unknown container.
        do {
            _ = try await client.call(service: "kata.agent.v1.AgentService", method: "WaitProcess", payload: [])
            Issue.record("WaitProcess succeeded")
        } catch let error as TTRPCError {
            #expect(error.code == .notFound, "\(error)")
            #expect(error.message.contains("WaitProcess"))
        }
        // The connection still serves after errors.
        #expect(try await Kata_Agent_V1_HealthClient(client).check(Kata_Agent_V1_CheckRequest()).status == .serving)
        await client.close()
        #expect(await agent.stop() == 0)
    }

    @Test func garbageDoesNotKillTheAgent() async throws {
        let (agent, client, socket) = try await Self.startAgent()

        // 1. Random bytes, 2. a header announcing a frame over the 4 MiB cap, 3. a well-formed
        //    frame whose payload is not a ttrpc Request, 4. a half frame and a hang-up.
        var junk = [UInt8](repeating: 0, count: 4096)
        for i in junk.indices { junk[i] = UInt8.random(in: 0...255) }
        let oversized: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0]
        let badRequest: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 1, 1, 0, 0xde, 0xad, 0xbe, 0xef]
        let halfFrame: [UInt8] = [0, 0, 0, 100, 0, 0, 0, 3, 1, 0, 1, 2]
        for bytes in [junk, oversized, badRequest, halfFrame] {
            try RawSocket.sendAndHangUp(path: socket, bytes: bytes)
        }
        // A valid method with an undecodable request body: InvalidArgument, not a crash.
        do {
            _ = try await client.call(service: "kata.agent.v1.AgentService", method: "GetGuestDetails", payload: [0xff, 0xff])
            Issue.record("undecodable request accepted")
        } catch let error as TTRPCError {
            #expect(error.code == .invalidArgument, "\(error)")
        }
        // Unknown service and method.
        do {
            _ = try await client.call(service: "no.such.Service", method: "Nope", payload: [])
            Issue.record("unknown service accepted")
        } catch let error as TTRPCError {
            #expect(error.code == .unimplemented || error.code == .notFound, "\(error)")
        }

        #expect(agent.process.isRunning)
        let fresh = try await TTRPCClient.connect(unixSocketPath: socket)
        #expect(try await Kata_Agent_V1_HealthClient(fresh).check(Kata_Agent_V1_CheckRequest()).status == .serving)
        await fresh.close()
        await client.close()
        #expect(await agent.stop() == 0)
    }

    @Test func badConfigurationExitsWithUsage() async throws {
        let agent = try WatchedProcess(executable: try AgentBinaries.debugAgent(), arguments: ["--listen", "tcp://x"])
        #expect(await agent.waitForExit() == 2)
        #expect(agent.log.contains("invalid listen address 'tcp://x'"))
        #expect(agent.log.contains("usage: kata-agent"))
    }

    @Test func listenFailureIsFatalAndNamed() async throws {
        // A socket path in a directory that does not exist.
        let agent = try WatchedProcess(
            executable: try AgentBinaries.debugAgent(), arguments: ["--listen", "unix:///nonexistent-dir/a.sock"])
        #expect(await agent.waitForExit() == 1)
        #expect(agent.log.contains("fatal: listen on unix:///nonexistent-dir/a.sock"))
        #expect(!agent.log.contains("powering off"))
    }

    static func field<T>(_ value: T) -> String {
        withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

enum RawSocket {
    /// Connects to a Unix socket, writes `bytes`, and closes.
    static func sendAndHangUp(path: String, bytes: [UInt8]) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw HarnessError("connect \(path): errno \(errno)") }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // Give the server a moment to read before the hang-up.
        usleep(20_000)
    }
}
