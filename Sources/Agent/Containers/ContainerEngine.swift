// The agent's container state: the registry, the sandbox (storages, hostname) and OOM watching.
// One per agent, shared by every connection.
import GuestContainers
import Synchronization

/// How the engine treats the machine it runs on.
public struct EngineOptions: Sendable {
    /// Where containers get their cgroups (see GuestContainers.ContainerOptions).
    public var containers: ContainerOptions
    /// Whether the agent owns this machine (guest PID 1): CreateSandbox sets the hostname and
    /// SetGuestDateTime sets the clock. False on a host (tests), where both are refused.
    public var ownsMachine: Bool

    public init(containers: ContainerOptions, ownsMachine: Bool) {
        self.containers = containers
        self.ownsMachine = ownsMachine
    }

    /// The guest: cgroup v2 at /sys/fs/cgroup, hostname and clock ours.
    public static let guest = EngineOptions(containers: ContainerOptions(cgroupRoot: "/sys/fs/cgroup"), ownsMachine: true)
    /// A host process: no cgroups, nothing of the host's changed.
    public static let host = EngineOptions(containers: ContainerOptions(cgroupRoot: nil), ownsMachine: false)
}

public final class ContainerEngine: Sendable {
    enum Sandbox {
        case none
        case created(id: String, storageMounts: [String])
    }

    let options: EngineOptions
    let registry = ContainerRegistry()
    let oom = OOMWatcher()
    let sandbox = Mutex<Sandbox>(.none)

    public init(options: EngineOptions) {
        self.options = options
    }
}

/// Polls every container's OOM-kill counter (memory.events oom_kill) while someone waits in
/// GetOOMEvent; an increase queues one event per container.
actor OOMWatcher {
    static let interval = Duration.milliseconds(100)
    private var seen: [String: UInt64] = [:]
    private var queue: [String] = []

    /// Records the counter a new container starts with.
    func watch(_ id: String, count: UInt64) {
        seen[id] = count
    }

    /// Stops watching `id`; a counter that grew since the last poll still queues its event.
    func forget(_ id: String, finalCount: UInt64? = nil) {
        if let before = seen[id], let finalCount, finalCount > before { queue.append(id) }
        seen[id] = nil
    }

    /// The id of the next container whose cgroup had a process OOM-killed.
    func next(_ registry: ContainerRegistry) async throws -> String {
        while true {
            for r in await registry.all() {
                guard let count = r.container.cgroup?.oomKillCount() else { continue }
                if let before = seen[r.id], count > before { queue.append(r.id) }
                seen[r.id] = count
            }
            if !queue.isEmpty { return queue.removeFirst() }
            try await Task.sleep(for: Self.interval)
        }
    }
}
