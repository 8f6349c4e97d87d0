// Lays a plan out as a ks_ctr_config and drives the C helper through its barriers:
// spawn (child waits, in its cgroup: born there with v2, moved there with v1) -> advance (child
// sets up, reports ready)
// -> later advance again (child loads seccomp and execs).
import CGuest
import Glibc

/// Where a process's standard streams go.
public enum ContainerStdio: Sendable {
    /// The caller's descriptors (not taken over; the caller closes its copies).
    case fds(stdin: Int32, stdout: Int32, stderr: Int32)
    /// A new pseudo-terminal; the process gets the slave as controlling terminal, and the
    /// ContainerProcess owns the master (`terminalMaster`).
    case terminal
}

/// A child between clone and execve.
struct PendingChild {
    var child: ks_ctr_child
    /// The pty master, once the child has sent it (after the setup barrier).
    var ptyMaster: Int32? { child.pty_master >= 0 ? child.pty_master : nil }
}

enum Launcher {
    /// Clones the child into `cgroup`; it waits at the first barrier. `namespaceFDs` non-empty
    /// means exec. A cgroup v2 gets the child at birth (CLONE_INTO_CGROUP, docs/containers.md);
    /// v1 cgroups, one per controller, get it moved in after the clone.
    static func spawn(
        id: String, process: ProcessPlan, root: RootPlan?, namespaceFDs: [Int32], cgroup: (any ContainerCgroup)?,
        stdio: ContainerStdio
    ) throws(ContainerError) -> PendingChild {
        let cgroupFD = try cgroup?.openForClone()
        defer { if let fd = cgroupFD { close(fd) } }
        let arena = CArena()
        var cfg = ks_ctr_config()
        cfg.clone_flags = root?.cloneFlags ?? 0
        (cfg.into_cgroup, cfg.cgroup_fd) = cgroupFD.map { (1, $0) } ?? (0, -1)
        cfg.ns_fds = arena.array(namespaceFDs)
        cfg.ns_count = Int32(namespaceFDs.count)
        if let root {
            cfg.rootfs = arena.string(root.rootfs)
            cfg.mounts = arena.array(root.mounts.map { m in
                ks_ctr_mount(
                    source: arena.string(m.source), target: arena.string(m.target),
                    fstype: arena.optionalString(m.fstype), data: arena.optionalString(m.data),
                    flags: m.flags, propagation: m.propagation, bind: m.bind ? 1 : 0, recursive: m.recursive ? 1 : 0)
            })
            cfg.mount_count = Int32(root.mounts.count)
            cfg.setup_dev = 1
            cfg.masked_paths = arena.strings(root.maskedPaths)
            cfg.masked_count = Int32(root.maskedPaths.count)
            cfg.readonly_paths = arena.strings(root.readonlyPaths)
            cfg.readonly_count = Int32(root.readonlyPaths.count)
            cfg.root_readonly = root.readonly ? 1 : 0
            cfg.hostname = arena.optionalString(root.hostname)
        }
        cfg.rlimits = arena.array(process.rlimits.map { ks_ctr_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) })
        cfg.rlimit_count = Int32(process.rlimits.count)
        cfg.uid = process.uid
        cfg.gid = process.gid
        cfg.groups = arena.array(process.groups)
        cfg.group_count = Int32(process.groups.count)
        cfg.umask_value = process.umask
        if let caps = process.capabilities {
            cfg.set_caps = 1
            cfg.cap_bounding = caps.bounding
            cfg.cap_effective = caps.effective
            cfg.cap_permitted = caps.permitted
            cfg.cap_inheritable = caps.inheritable
            cfg.cap_ambient = caps.ambient
            cfg.cap_last = lastCapability()
        }
        cfg.no_new_privs = process.noNewPrivileges ? 1 : 0
        if let bpf = process.seccomp {
            cfg.seccomp_prog = arena.bytes(bpf)
            cfg.seccomp_insns = Int32(bpf.count / 8)
        }
        cfg.cwd = arena.string(process.cwd)
        cfg.argv = arena.strings(process.argv)
        cfg.envp = arena.strings(process.env)
        cfg.path_env = arena.optionalString(process.pathEnv)
        switch stdio {
        case .fds(let i, let o, let e):
            (cfg.stdin_fd, cfg.stdout_fd, cfg.stderr_fd, cfg.terminal) = (i, o, e, 0)
        case .terminal:
            (cfg.stdin_fd, cfg.stdout_fd, cfg.stderr_fd, cfg.terminal) = (-1, -1, -1, 1)
        }
        var child = ks_ctr_child()
        var failure = ks_ctr_failure()
        let rc = ChildRegistry.spawning { () -> (Int32, Int32?) in
            let rc = ks_ctr_spawn(&cfg, &child, &failure)
            return (rc, rc == 0 ? child.pid : nil)
        }
        guard rc == 0 else {
            if rc == -EPROTO { throw setupError(id: id, failure, root: root) }
            throw .system(id: id, operation: "clone", errno: -rc)
        }
        let pending = PendingChild(child: child)
        if cgroupFD == nil, let cgroup {
            do {
                try cgroup.addProcess(child.pid)
            } catch {
                abort(pending)
                throw error
            }
        }
        return pending
    }

    /// Releases the child from a barrier. `expectReady`: the setup barrier (a report is due);
    /// otherwise the start barrier (the socket closes at execve).
    /// Returns the child with what it sent on the way (the pty master). On error the caller
    /// still owns `pending` (abort it).
    static func advance(id: String, _ pending: inout PendingChild, expectReady: Bool, root: RootPlan?) throws(ContainerError) {
        var failure = ks_ctr_failure()
        let rc = ks_ctr_advance(&pending.child, &failure)
        switch rc {
        case 1 where expectReady, 0 where !expectReady:
            return
        case 0, 1:
            throw .childVanished(id: id, phase: expectReady ? "setup" : "start")
        case -EPROTO where failure.step != 0:
            throw setupError(id: id, failure, root: root)
        default:
            throw .system(id: id, operation: "sync with child", errno: -rc)
        }
    }

    static func abort(_ pending: PendingChild) {
        var child = pending.child
        let pid = child.pid
        ks_ctr_abort(&child)
        ChildRegistry.forget(pid: pid)
    }

    private static func setupError(id: String, _ f: ks_ctr_failure, root: RootPlan?) -> ContainerError {
        let step = String(cString: ks_ctr_step_name(f.step))
        var detail: String?
        let i = Int(f.index)
        switch Int(f.step) {
        case Int(KS_CTR_STEP_MOUNT.rawValue), Int(KS_CTR_STEP_MKDIR.rawValue), Int(KS_CTR_STEP_MOUNT_REMOUNT.rawValue),
            Int(KS_CTR_STEP_MOUNT_PROPAGATION.rawValue):
            if let root, i >= 0, i < root.mounts.count { detail = root.mounts[i].target }
        case Int(KS_CTR_STEP_MASK_PATH.rawValue):
            if let root, i >= 0, i < root.maskedPaths.count { detail = root.maskedPaths[i] }
        case Int(KS_CTR_STEP_READONLY_PATH.rawValue):
            if let root, i >= 0, i < root.readonlyPaths.count { detail = root.readonlyPaths[i] }
        case Int(KS_CTR_STEP_RLIMIT.rawValue), Int(KS_CTR_STEP_STDIO.rawValue), Int(KS_CTR_STEP_SETNS.rawValue),
            Int(KS_CTR_STEP_DEV_NODE.rawValue), Int(KS_CTR_STEP_BOUNDING_SET.rawValue), Int(KS_CTR_STEP_AMBIENT.rawValue):
            if i >= 0 { detail = "#\(i)" }
        default:
            break
        }
        return .setup(id: id, step: step, detail: detail, errno: f.err)
    }

    /// /proc/sys/kernel/cap_last_cap, or the highest capability we know.
    static func lastCapability() -> Int32 {
        if let text = readSmallFile("/proc/sys/kernel/cap_last_cap"),
            let n = Int32(text.trimmedWhitespace()), n >= 0, n < 64
        {
            return n
        }
        return Int32(Tables.capabilities.count - 1)
    }
}

extension String {
    func trimmedWhitespace() -> String {
        let set = " \t\n"
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}

/// Reads a small text file (proc, cgroup files). nil when it cannot be read.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out += buf[0..<n]
        if out.count > 1 << 20 { break }
    }
    return String(decoding: out, as: UTF8.self)
}
