// A container's cgroup on the unified hierarchy (cgroup v2, as in the guest): limits from
// linux.resources, membership, freeze/thaw, stats and the OOM-kill counter.
import Glibc
import OCI

public struct CgroupStats: Sendable, Equatable {
    public var memoryCurrent: UInt64?
    public var memoryMax: UInt64?  // nil: "max" or no memory controller
    public var cpuUsageMicros: UInt64?
    public var pidsCurrent: UInt64?
    public var oomKills: UInt64?
}

public struct Cgroup: Sendable {
    public let id: String
    /// Absolute directory of this cgroup (root + cgroupsPath).
    public let path: String

    /// `root` is the cgroup2 mount (the guest: /sys/fs/cgroup); `cgroupsPath` from the spec, or
    /// "/kata/<id>" when the spec has none.
    init(id: String, root: String, cgroupsPath: String?) throws(ContainerError) {
        let rel = cgroupsPath ?? "/kata/\(id)"
        guard !rel.contains(":") else {
            throw .invalidSpec(field: "linux.cgroupsPath", reason: "systemd-style paths (slice:prefix:name) are not supported")
        }
        guard !SpecValidation.hasDotDot(rel), !rel.utf8.contains(0) else {
            throw .invalidSpec(field: "linux.cgroupsPath", reason: "must not contain '..'")
        }
        let parts = rel.split(separator: "/")
        guard !parts.isEmpty else { throw .invalidSpec(field: "linux.cgroupsPath", reason: "must name a cgroup below the root") }
        self.id = id
        self.path = root + "/" + parts.joined(separator: "/")
    }

    /// Creates the directory (and parents), enabling the memory, pids and cpu controllers in each
    /// ancestor whether or not the spec limits them: stats (memory.current, pids.current) and a
    /// later Update need them. Returns the directories it created, deepest last, for `destroy`.
    func create(root: String) throws(ContainerError) -> [String] {
        var created: [String] = []
        let rel = path.dropFirst(root.count).split(separator: "/")
        var dir = root
        for part in rel {
            // Best effort per controller: a missing one shows up when its limit is written.
            for c in ["+memory", "+pids", "+cpu"] { _ = writeFile(dir + "/cgroup.subtree_control", c) }
            dir += "/" + part
            if mkdir(dir, 0o755) == 0 {
                created.append(dir)
            } else if errno != EEXIST {
                let e = errno
                for d in created.reversed() { rmdir(d) }
                throw .cgroup(id: id, path: dir, operation: "mkdir", errno: e)
            }
        }
        return created
    }

    /// Writes the limits of `resources` (memory.max, cpu.weight, cpu.max, pids.max).
    public func apply(_ resources: OCIResources) throws(ContainerError) {
        if let limit = resources.memory?.limit {
            try write("memory.max", limit < 0 ? "max" : String(limit))
        }
        if let cpu = resources.cpu {
            if let shares = cpu.shares, shares > 0 {
                // The kernel's mapping of cgroup v1 shares (2...262144) onto v2 weight (1...10000).
                let s = min(max(shares, 2), 262_144)
                try write("cpu.weight", String(1 + ((s - 2) * 9999) / 262_142))
            }
            if cpu.quota != nil || cpu.period != nil {
                let quota = cpu.quota.map { $0 <= 0 ? "max" : String($0) } ?? "max"
                try write("cpu.max", "\(quota) \(cpu.period ?? 100_000)")
            }
        }
        if let pids = resources.pids {
            try write("pids.max", pids.limit <= 0 ? "max" : String(pids.limit))
        }
    }

    public func addProcess(_ pid: Int32) throws(ContainerError) {
        try write("cgroup.procs", String(pid))
    }

    /// The cgroup's directory, for a child cloned straight into it (CLONE_INTO_CGROUP).
    public func openForClone() throws(ContainerError) -> Int32? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .cgroup(id: id, path: path, operation: "open", errno: errno) }
        return fd
    }

    /// Freezes or thaws, then waits (up to ~2 s) until cgroup.events reports the new state.
    public func setFrozen(_ frozen: Bool) throws(ContainerError) {
        try write("cgroup.freeze", frozen ? "1" : "0")
        let want = frozen ? "frozen 1" : "frozen 0"
        for _ in 0..<200 {
            if let ev = readSmallFile(path + "/cgroup.events"), ev.split(separator: "\n").contains(Substring(want)) { return }
            usleep(10_000)
        }
        throw .cgroup(id: id, path: path + "/cgroup.events", operation: "wait for \(want)", errno: ETIMEDOUT)
    }

    public func stats() -> CgroupStats {
        var s = CgroupStats()
        s.memoryCurrent = number("memory.current")
        s.memoryMax = number("memory.max")
        s.pidsCurrent = number("pids.current")
        s.cpuUsageMicros = keyed("cpu.stat", "usage_usec")
        s.oomKills = keyed("memory.events", "oom_kill")
        return s
    }

    /// memory.events oom_kill: how many processes of this cgroup the OOM killer took.
    public func oomKillCount() -> UInt64 {
        keyed("memory.events", "oom_kill") ?? 0
    }

    /// Removes the cgroup directories created for this container (deepest first). A cgroup
    /// still holding a dying process is retried for a short while.
    public func destroy(created: [String]) {
        for dir in created.reversed() {
            for _ in 0..<100 {
                if rmdir(dir) == 0 || errno == ENOENT { break }
                if errno != EBUSY { break }
                usleep(10_000)
            }
        }
    }

    // MARK: files

    private func write(_ file: String, _ value: String) throws(ContainerError) {
        let e = writeFile(path + "/" + file, value)
        if e != 0 { throw .cgroup(id: id, path: path + "/" + file, operation: "write \"\(value)\" to", errno: e) }
    }

    private func number(_ file: String) -> UInt64? {
        readSmallFile(path + "/" + file).flatMap { UInt64($0.trimmedWhitespace()) }
    }

    private func keyed(_ file: String, _ key: String) -> UInt64? {
        guard let text = readSmallFile(path + "/" + file) else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, f[0] == key { return UInt64(f[1]) }
        }
        return nil
    }
}

/// Writes `value` to an existing file; 0 or errno.
func writeFile(_ path: String, _ value: String) -> Int32 {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    var bytes = Array(value.utf8)
    let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress, $0.count) }
    if n < 0 { return errno }
    return n == bytes.count ? 0 : EIO
}
