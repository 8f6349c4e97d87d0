// An OCI spec checked and turned into plain values the C helper can take: the plan of what the
// child does between clone and execve. Every invalid value is reported with its field name.
import OCI

struct CapabilitySets: Equatable {
    var bounding: UInt64 = 0, effective: UInt64 = 0, inheritable: UInt64 = 0, permitted: UInt64 = 0
    var ambient: UInt64 = 0
}

struct ProcessPlan {
    var argv: [String]
    var env: [String]
    var cwd: String
    var uid: UInt32
    var gid: UInt32
    var groups: [UInt32]
    var umask: Int32
    var capabilities: CapabilitySets?
    var rlimits: [(resource: Int32, soft: UInt64, hard: UInt64)]
    var noNewPrivileges: Bool
    var terminal: Bool
    /// BPF program (struct sock_filter array) built from linux.seccomp, shared by every process.
    var seccomp: [UInt8]?

    var pathEnv: String? {
        env.last(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) }
    }
}

struct MountPlan: Equatable {
    var source: String
    var target: String
    var fstype: String?
    var data: String?
    var flags: UInt
    var propagation: UInt
    var bind: Bool
    var recursive: Bool
}

struct RootPlan {
    var rootfs: String
    var readonly: Bool
    var mounts: [MountPlan]
    var maskedPaths: [String]
    var readonlyPaths: [String]
    var hostname: String?
    var cloneFlags: UInt64
}

enum SpecValidation {
    static func process(_ p: OCIProcess, field: String, seccomp: [UInt8]?) throws(ContainerError) -> ProcessPlan {
        guard let args = p.args, let first = args.first, !first.isEmpty else {
            throw .invalidSpec(field: "\(field).args", reason: "must name a program")
        }
        guard p.cwd.hasPrefix("/") else {
            throw .invalidSpec(field: "\(field).cwd", reason: "must be an absolute path, got \"\(p.cwd)\"")
        }
        for (i, s) in args.enumerated() where s.utf8.contains(0) {
            throw .invalidSpec(field: "\(field).args[\(i)]", reason: "contains a NUL byte")
        }
        let env = p.env ?? []
        for (i, e) in env.enumerated() where !e.contains("=") || e.hasPrefix("=") || e.utf8.contains(0) {
            throw .invalidSpec(field: "\(field).env[\(i)]", reason: "must be KEY=value, got \"\(e)\"")
        }
        if let umask = p.user.umask, umask > 0o777 {
            throw .invalidSpec(field: "\(field).user.umask", reason: "must be at most 0777, got \(umask)")
        }
        var rlimits: [(Int32, UInt64, UInt64)] = []
        for (i, r) in (p.rlimits ?? []).enumerated() {
            guard let res = Tables.rlimits[r.type] else {
                throw .invalidSpec(field: "\(field).rlimits[\(i)].type", reason: "unknown rlimit \"\(r.type)\"")
            }
            guard r.soft <= r.hard else {
                throw .invalidSpec(field: "\(field).rlimits[\(i)]", reason: "soft limit \(r.soft) exceeds hard \(r.hard)")
            }
            rlimits.append((res, r.soft, r.hard))
        }
        return ProcessPlan(
            argv: args, env: env, cwd: p.cwd, uid: p.user.uid, gid: p.user.gid,
            groups: p.user.additionalGids ?? [], umask: Int32(p.user.umask ?? 0o022),
            capabilities: try p.capabilities.map { c throws(ContainerError) in try capabilities(c, field: "\(field).capabilities") },
            rlimits: rlimits, noNewPrivileges: p.noNewPrivileges ?? false, terminal: p.terminal ?? false,
            seccomp: seccomp)
    }

    static func capabilities(_ c: OCICapabilities, field: String) throws(ContainerError) -> CapabilitySets {
        func mask(_ names: [String]?, _ set: String) throws(ContainerError) -> UInt64 {
            var m: UInt64 = 0
            for (i, n) in (names ?? []).enumerated() {
                guard let bit = Tables.capabilities.firstIndex(of: n) else {
                    throw .invalidSpec(field: "\(field).\(set)[\(i)]", reason: "unknown capability \"\(n)\"")
                }
                m |= 1 << UInt64(bit)
            }
            return m
        }
        return CapabilitySets(
            bounding: try mask(c.bounding, "bounding"), effective: try mask(c.effective, "effective"),
            inheritable: try mask(c.inheritable, "inheritable"), permitted: try mask(c.permitted, "permitted"),
            ambient: try mask(c.ambient, "ambient"))
    }

    static func root(_ spec: OCISpec, rootfs: String, namespaceFlags: NamespaceFlags) throws(ContainerError) -> RootPlan {
        guard rootfs.hasPrefix("/"), !hasDotDot(rootfs) else {
            throw .invalidSpec(field: "root.path", reason: "the rootfs must be an absolute path without '..', got \"\(rootfs)\"")
        }
        let base = rootfs.count > 1 && rootfs.hasSuffix("/") ? String(rootfs.dropLast()) : rootfs
        var mounts: [MountPlan] = []
        for (i, m) in (spec.mounts ?? []).enumerated() {
            mounts.append(try mount(m, rootfs: base, field: "mounts[\(i)]"))
        }
        let masked = try containerPaths(spec.linux?.maskedPaths ?? [], field: "linux.maskedPaths")
        let readonly = try containerPaths(spec.linux?.readonlyPaths ?? [], field: "linux.readonlyPaths")
        if let h = spec.hostname {
            guard namespaceFlags.hasUTS else {
                throw .invalidSpec(field: "hostname", reason: "needs a uts namespace in linux.namespaces")
            }
            guard h.utf8.count <= 64, !h.utf8.contains(0) else {
                throw .invalidSpec(field: "hostname", reason: "must be at most 64 bytes without NUL")
            }
        }
        return RootPlan(
            rootfs: base, readonly: spec.root?.readonly ?? false, mounts: mounts, maskedPaths: masked,
            readonlyPaths: readonly, hostname: spec.hostname, cloneFlags: namespaceFlags.flags)
    }

    static func mount(_ m: OCIMount, rootfs: String, field: String) throws(ContainerError) -> MountPlan {
        guard m.destination.hasPrefix("/"), !hasDotDot(m.destination), !m.destination.utf8.contains(0) else {
            throw .invalidSpec(field: "\(field).destination", reason: "must be an absolute path without '..', got \"\(m.destination)\"")
        }
        var flags: UInt = 0, propagation: UInt = 0
        var bind = m.type == "bind", recursive = false
        var data: [String] = []
        for opt in m.options ?? [] {
            switch Tables.mountOptions[opt] {
            case .set(let f): flags |= f
            case .clear(let f): flags &= ~f
            case .propagation(let p): propagation = p
            case .bind(let rec):
                bind = true
                recursive = recursive || rec
            case nil: data.append(opt)
            }
        }
        var fstype = m.type
        if fstype == "cgroup" { fstype = "cgroup2" }  // the guest has the unified hierarchy only
        if bind {
            guard m.source?.hasPrefix("/") == true else {
                throw .invalidSpec(field: "\(field).source", reason: "a bind mount needs an absolute source")
            }
            fstype = nil
            data = []
        } else if fstype == nil || fstype?.isEmpty == true {
            throw .invalidSpec(field: "\(field).type", reason: "a mount needs a type (or the bind option)")
        }
        let target = m.destination == "/" ? rootfs : rootfs + m.destination
        guard target.utf8.count < 4000 else {
            throw .invalidSpec(field: "\(field).destination", reason: "path too long")
        }
        return MountPlan(
            source: m.source ?? fstype ?? "none", target: target, fstype: fstype,
            data: data.isEmpty ? nil : data.joined(separator: ","), flags: flags, propagation: propagation,
            bind: bind, recursive: recursive)
    }

    private static func containerPaths(_ paths: [String], field: String) throws(ContainerError) -> [String] {
        for (i, p) in paths.enumerated() where !p.hasPrefix("/") || hasDotDot(p) || p.utf8.contains(0) {
            throw .invalidSpec(field: "\(field)[\(i)]", reason: "must be an absolute path without '..', got \"\(p)\"")
        }
        return paths
    }

    static func hasDotDot(_ path: String) -> Bool {
        path.split(separator: "/").contains("..")
    }
}

/// linux.namespaces as clone flags, plus the namespaces joined by path (a pod's containers join
/// the ipc and uts namespaces of its sandbox container, and its pid namespace when the pod shares
/// one; the runtime rewrites those paths to `/proc/<guest pid>/ns/<type>`, docs/kubernetes.md).
struct NamespaceFlags {
    var flags: UInt64 = 0
    let uts: UInt64
    /// Paths to join, in the order they are joined (setns before the container's clone).
    var joins: [(type: String, path: String)] = []

    /// The uts namespace is the container's own or one it joins: hostname may be set.
    var hasUTS: Bool { flags & uts != 0 || joins.contains { $0.type == "uts" } }

    static func parse(_ namespaces: [OCINamespace]?, clone: CloneFlagValues) throws(ContainerError) -> NamespaceFlags {
        var r = NamespaceFlags(uts: clone.uts)
        var seen: Set<String> = []
        for (i, ns) in (namespaces ?? []).enumerated() {
            let field = "linux.namespaces[\(i)]"
            guard seen.insert(ns.type).inserted else {
                throw .invalidSpec(field: "\(field).type", reason: "\(ns.type) is listed twice")
            }
            let path = ns.joinPath
            let flag: UInt64
            switch ns.type {
            case "mount": flag = clone.mount
            case "pid": flag = clone.pid
            case "uts": flag = clone.uts
            case "ipc": flag = clone.ipc
            case "network", "cgroup": continue  // network: the VM's own; cgroup: not yet (docs/containers.md)
            case "user", "time":
                throw .invalidSpec(field: "\(field).type", reason: "\(ns.type) namespaces are not supported")
            default:
                throw .invalidSpec(field: "\(field).type", reason: "unknown namespace type \"\(ns.type)\"")
            }
            guard let path else {
                r.flags |= flag
                continue
            }
            guard ns.type != "mount" else {
                throw .invalidSpec(field: "\(field).path", reason: "a container needs a mount namespace of its own")
            }
            guard path.hasPrefix("/"), !SpecValidation.hasDotDot(path), !path.utf8.contains(0), path.utf8.count < 4000 else {
                throw .invalidSpec(field: "\(field).path", reason: "must be an absolute path without '..', got \"\(path)\"")
            }
            r.joins.append((ns.type, path))
        }
        guard r.flags & clone.mount != 0 else {
            throw .invalidSpec(field: "linux.namespaces", reason: "a mount namespace is required")
        }
        return r
    }
}

struct CloneFlagValues {
    var mount: UInt64, pid: UInt64, uts: UInt64, ipc: UInt64
}
