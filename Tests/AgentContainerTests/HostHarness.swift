// The real AgentService behind our ttrpc server, in this test process, on a Unix socket; the
// generated client calls it. Containers run on this host (root): cgroup v1 below this
// process's own cgroups where all five controllers are writable, else the v2 mount.
import Agent
import AgentAPI
import Foundation
import Glibc
import GuestContainers
import TTRPC
import SystemSupport

final class HostAgent {
    let server: AgentServer
    let client: TTRPCClient
    let driver: ContainerDriver
    let socket: String

    static let cgroupV2 = "/sys/fs/cgroup/unified"

    static func containerOptions() -> ContainerOptions {
        if let roots = v1Roots() { return ContainerOptions(cgroupRoot: nil, cgroupV1Roots: roots) }
        return ContainerOptions(cgroupRoot: access(cgroupV2 + "/cgroup.procs", W_OK) == 0 ? cgroupV2 : nil)
    }

    /// cgroup v1 roots below this process's own cgroups, or nil when a controller is missing.
    static func v1Roots() -> [String: String]? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        var roots: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            for c in f[1].split(separator: ",") where CgroupV1.controllers.contains(String(c)) {
                let dir = "/sys/fs/cgroup/\(c)" + (f[2] == "/" ? "" : String(f[2]))
                if access(dir + "/cgroup.procs", W_OK) == 0 { roots[String(c)] = dir }
            }
        }
        return roots.count == CgroupV1.controllers.count ? roots : nil
    }

    static var memoryLimitSkipReason: String? {
        if v1Roots() != nil { return nil }
        let controllers = (try? String(contentsOfFile: cgroupV2 + "/cgroup.controllers", encoding: .utf8)) ?? ""
        if controllers.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("memory") { return nil }
        return "this host's cgroup2 (\(cgroupV2)) has no memory controller and cgroup v1 memory is not writable"
    }

    private init(server: AgentServer, client: TTRPCClient, socket: String) {
        self.server = server
        self.client = client
        self.socket = socket
        self.driver = ContainerDriver(agent: Kata_Agent_V1_AgentServiceClient(client))
    }

    static func start() async throws -> HostAgent {
        signal(SIGPIPE, SIG_IGN)
        let socket = "/tmp/ks-agentc-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let server = AgentServer(
            startedNanos: 0, log: AgentLog(), engine: EngineOptions(containers: containerOptions(), ownsMachine: false))
        try await server.listen(on: [.unix(path: socket)])
        let client = try await TTRPCClient.connect(unixSocketPath: socket)
        return HostAgent(server: server, client: client, socket: socket)
    }

    func stop() async {
        try? await client.close()
        await server.stop()
    }

    static func uniqueID(_ name: String) -> String {
        "\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }
}

/// What a test must leave as it found: children, mounts, descriptors.
struct LeakSnapshot: Equatable {
    var children: [Int32]
    var mounts: String
    var descriptors: Int

    /// Reader threads and reaped children settle shortly after a removal: the first snapshot
    /// (within ~3 s) that has nothing more than `before`, else the last one taken.
    static func settled(comparedTo before: LeakSnapshot) async -> LeakSnapshot {
        var now = take()
        for _ in 0..<30 {
            if now.leftChildren(since: before).isEmpty && now.mounts == before.mounts && now.descriptors <= before.descriptors { break }
            try? await Task.sleep(for: .milliseconds(100))
            now = take()
        }
        return now
    }

    /// Children now that were not there before (suites running in parallel start and end their
    /// own children meanwhile: one that went away is not this test's leak).
    func leftChildren(since before: LeakSnapshot) -> [Int32] {
        children.filter { !before.children.contains($0) }
    }

    /// fd -> target, for messages.
    static func describeDescriptors() -> String {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.sorted().map { "\($0)->\((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) ?? "?")" }
            .joined(separator: " ")
    }

    static func take() -> LeakSnapshot {
        LeakSnapshot(children: childPIDs(), mounts: (try? readWholeTextFile("/proc/self/mountinfo")) ?? "",
                     descriptors: (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1)
    }

    /// Children of this process (reader threads end shortly after their streams: settle first).
    static func childPIDs() -> [Int32] {
        let me = getpid()
        var out: [Int32] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == me { out.append(pid) }
        }
        return out.sorted()
    }
}
