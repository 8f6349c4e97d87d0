// The same container cgroup on cgroup v1 (one directory per controller), for hosts like our
// build machines; the guest uses v2 (Cgroup.swift). Controllers: memory, cpu, cpuacct, pids, freezer.
import Glibc
import OCI

/// What the container engine needs from a cgroup, on either hierarchy.
public protocol ContainerCgroup: Sendable {
    /// A directory that identifies the cgroup (v1: the memory one).
    var path: String { get }
    func apply(_ resources: OCIResources) throws(ContainerError)
    func addProcess(_ pid: Int32) throws(ContainerError)
    /// A descriptor to clone a process straight into the cgroup (the caller closes it), or nil
    /// where only `addProcess` can place it (v1: one cgroup per controller).
    func openForClone() throws(ContainerError) -> Int32?
    func setFrozen(_ frozen: Bool) throws(ContainerError)
    func stats() -> CgroupStats
    func oomKillCount() -> UInt64
    func destroy(created: [String])
}

extension Cgroup: ContainerCgroup {}

public struct CgroupV1: ContainerCgroup {
    public static let controllers = ["memory", "cpu", "cpuacct", "pids", "freezer"]
    public let id: String
    /// controller -> this container's directory.
    public let dirs: [String: String]
    public var path: String { dirs["memory"] ?? dirs.values.sorted().first ?? "" }

    /// `roots`: controller -> the directory below which containers get their cgroups.
    init(id: String, roots: [String: String], cgroupsPath: String?) throws(ContainerError) {
        var dirs: [String: String] = [:]
        for (controller, root) in roots {
            guard Self.controllers.contains(controller) else {
                throw .invalidSpec(field: "cgroup v1 roots", reason: "unknown controller \(controller)")
            }
            dirs[controller] = try Cgroup(id: id, root: root, cgroupsPath: cgroupsPath).path
        }
        self.id = id
        self.dirs = dirs
    }

    /// mkdir -p in every controller; returns the directories created (for destroy).
    func create(roots: [String: String]) throws(ContainerError) -> [String] {
        var created: [String] = []
        for (controller, dir) in dirs.sorted(by: { $0.key < $1.key }) {
            var cur = roots[controller] ?? ""
            for part in dir.dropFirst(cur.count).split(separator: "/") {
                cur += "/" + part
                if mkdir(cur, 0o755) == 0 {
                    created.append(cur)
                } else if errno != EEXIST {
                    let e = errno
                    destroy(created: created)
                    throw .cgroup(id: id, path: cur, operation: "mkdir", errno: e)
                }
            }
        }
        return created
    }

    public func apply(_ r: OCIResources) throws(ContainerError) {
        if let limit = r.memory?.limit {
            try write("memory", "memory.limit_in_bytes", String(limit < 0 ? -1 : limit))
            // Without the swap limit the container would swap instead of meeting its limit.
            if let mem = dirs["memory"], access(mem + "/memory.memsw.limit_in_bytes", W_OK) == 0 {
                try write("memory", "memory.memsw.limit_in_bytes", String(limit < 0 ? -1 : limit))
            }
        }
        if let cpu = r.cpu {
            if let shares = cpu.shares, shares > 0 { try write("cpu", "cpu.shares", String(shares)) }
            if let period = cpu.period { try write("cpu", "cpu.cfs_period_us", String(period)) }
            if let quota = cpu.quota { try write("cpu", "cpu.cfs_quota_us", String(quota <= 0 ? -1 : quota)) }
        }
        if let pids = r.pids { try write("pids", "pids.max", pids.limit <= 0 ? "max" : String(pids.limit)) }
    }

    public func addProcess(_ pid: Int32) throws(ContainerError) {
        for controller in dirs.keys.sorted() { try write(controller, "cgroup.procs", String(pid)) }
    }

    public func openForClone() throws(ContainerError) -> Int32? { nil }

    public func setFrozen(_ frozen: Bool) throws(ContainerError) {
        let want = frozen ? "FROZEN" : "THAWED"
        try write("freezer", "freezer.state", want)
        for _ in 0..<200 {
            if read("freezer", "freezer.state") == want { return }
            usleep(10_000)
        }
        throw .cgroup(id: id, path: (dirs["freezer"] ?? "") + "/freezer.state", operation: "wait for \(want)", errno: ETIMEDOUT)
    }

    public func stats() -> CgroupStats {
        var s = CgroupStats()
        s.memoryCurrent = read("memory", "memory.usage_in_bytes").flatMap { UInt64($0) }
        s.memoryMax = read("memory", "memory.limit_in_bytes").flatMap { UInt64($0) }
        s.cpuUsageMicros = read("cpuacct", "cpuacct.usage").flatMap { UInt64($0) }.map { $0 / 1000 }
        s.pidsCurrent = read("pids", "pids.current").flatMap { UInt64($0) }
        s.oomKills = oomKillCount()
        return s
    }

    /// memory.oom_control's oom_kill line (kernels >= 4.13).
    public func oomKillCount() -> UInt64 {
        guard let text = dirs["memory"].flatMap({ readSmallFile($0 + "/memory.oom_control") }) else { return 0 }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, f[0] == "oom_kill" { return UInt64(f[1]) ?? 0 }
        }
        return 0
    }

    public func destroy(created: [String]) {
        for dir in created.reversed() {
            for _ in 0..<100 {
                if rmdir(dir) == 0 || errno == ENOENT || errno != EBUSY { break }
                usleep(10_000)
            }
        }
    }

    private func write(_ controller: String, _ file: String, _ value: String) throws(ContainerError) {
        guard let dir = dirs[controller] else {
            throw .cgroup(id: id, path: file, operation: "find the \(controller) controller for", errno: ENOENT)
        }
        let e = writeFile(dir + "/" + file, value)
        if e != 0 { throw .cgroup(id: id, path: dir + "/" + file, operation: "write \"\(value)\" to", errno: e) }
    }

    private func read(_ controller: String, _ file: String) -> String? {
        dirs[controller].flatMap { readSmallFile($0 + "/" + file) }?.trimmedWhitespace()
    }
}
