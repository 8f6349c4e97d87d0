// An OCI container in the guest: created -> running <-> paused -> stopped, with typed transitions.
// The agent calls create/start/exec/signal/wait/pause/resume/stats/update/delete.
import CGuest
import Glibc
import OCI
import Synchronization

public struct ContainerOptions: Sendable {
    /// The cgroup v2 mount under which containers get their cgroups; nil: no cgroups (no
    /// limits, pause, stats).
    public var cgroupRoot: String?
    /// cgroup v1 instead: controller (memory, cpu, cpuacct, pids, freezer) -> the directory below
    /// which containers get their cgroups. Takes precedence over `cgroupRoot` when set.
    public var cgroupV1Roots: [String: String]?

    public init(cgroupRoot: String? = "/sys/fs/cgroup", cgroupV1Roots: [String: String]? = nil) {
        self.cgroupRoot = cgroupRoot
        self.cgroupV1Roots = cgroupV1Roots
    }
}

public final class Container: Sendable {
    public enum Status: String, Sendable {
        case created, running, paused, stopped
    }

    public let id: String
    public let initProcess: ContainerProcess
    public let cgroup: (any ContainerCgroup)?
    /// Where `create` spent its time, step by step (the agent logs it at debug).
    public let creationSteps: StepTimes
    private let cgroupDirs: [String]
    private let seccomp: [UInt8]?
    private let status_: Mutex<Status>
    private let execs: Mutex<[String: ContainerProcess]>

    private init(
        id: String, initProcess: ContainerProcess, cgroup: (any ContainerCgroup)?, cgroupDirs: [String], seccomp: [UInt8]?,
        creationSteps: StepTimes
    ) {
        self.id = id
        self.initProcess = initProcess
        self.cgroup = cgroup
        self.creationSteps = creationSteps
        self.cgroupDirs = cgroupDirs
        self.seccomp = seccomp
        self.status_ = Mutex(.created)
        self.execs = Mutex([:])
    }

    /// Clones the init process into new namespaces, places it in the cgroup and lets it set up
    /// the rootfs up to (not including) execve. Nothing is left behind when this throws.
    public static func create(
        id: String, spec: OCISpec, rootfs: String, stdio: ContainerStdio, options: ContainerOptions = ContainerOptions()
    ) throws(ContainerError) -> Container {
        var steps = StepTimes()
        guard let process = spec.process else { throw .invalidSpec(field: "process", reason: "required field is missing") }
        let clone = CloneFlagValues(
            mount: ks_ctr_clone_newns, pid: ks_ctr_clone_newpid, uts: ks_ctr_clone_newuts, ipc: ks_ctr_clone_newipc)
        let ns = try NamespaceFlags.parse(spec.linux?.namespaces, clone: clone)
        let root = try SpecValidation.root(spec, rootfs: rootfs, namespaceFlags: ns)
        var st = stat()
        guard stat(root.rootfs, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw .invalidSpec(field: "root.path", reason: "\(root.rootfs) is not a directory")
        }
        let bpf = try spec.linux?.seccomp.map { s throws(ContainerError) in try SeccompFilter.build(s) }
        let plan = try SpecValidation.process(process, field: "process", seccomp: bpf)
        let stdio = plan.terminal ? .terminal : stdio
        steps.mark("spec checked")

        var cgroup: (any ContainerCgroup)?
        var dirs: [String] = []
        if let roots = options.cgroupV1Roots {
            let cg = try CgroupV1(id: id, roots: roots, cgroupsPath: spec.linux?.cgroupsPath)
            dirs = try cg.create(roots: roots)
            cgroup = cg
        } else if let cgroupRoot = options.cgroupRoot {
            let cg = try Cgroup(id: id, root: cgroupRoot, cgroupsPath: spec.linux?.cgroupsPath)
            dirs = try cg.create(root: cgroupRoot)
            cgroup = cg
        }
        if let cg = cgroup {
            do {
                if let r = spec.linux?.resources { try cg.apply(r) }
            } catch {
                cg.destroy(created: dirs)
                throw error
            }
        }
        steps.mark("cgroup")
        var pending: PendingChild
        do {
            let joined = try openNamespaces(ns.joins, id: id)
            defer { for fd in joined { close(fd) } }
            pending = try Launcher.spawn(id: id, process: plan, root: root, namespaceFDs: joined, cgroup: cgroup, stdio: stdio)
        } catch {
            cgroup?.destroy(created: dirs)
            throw error
        }
        steps.mark("clone into the cgroup")
        do {
            try Launcher.advance(id: id, &pending, expectReady: true, root: root)
            steps.mark("rootfs and process set up")
        } catch {
            Launcher.abort(pending)
            cgroup?.destroy(created: dirs)
            throw error
        }
        let initProcess = ContainerProcess(containerID: id, execID: nil, pending: pending)
        return Container(id: id, initProcess: initProcess, cgroup: cgroup, cgroupDirs: dirs, seccomp: bpf, creationSteps: steps)
    }

    /// Opens the namespaces a new container joins; each must be a namespace of its type.
    private static func openNamespaces(_ joins: [(type: String, path: String)], id: String) throws(ContainerError) -> [Int32] {
        var fds: [Int32] = []
        for (i, join) in joins.enumerated() {
            let fd = ks_ctr_open_ns_path(join.path, join.type)
            guard fd >= 0 else {
                for fd in fds { close(fd) }
                if fd == -Int32(EINVAL) {
                    throw .invalidSpec(field: "linux.namespaces", reason: "\(join.path) is not a \(join.type) namespace (join \(i))")
                }
                throw .system(id: id, operation: "open \(join.path)", errno: -fd)
            }
            fds.append(fd)
        }
        return fds
    }

    public var status: Status {
        if case .exited = initProcess.status {
            status_.withLock { $0 = .stopped }
        }
        return status_.withLock { $0 }
    }

    /// created -> running: the init process loads seccomp and execs.
    public func start() throws(ContainerError) {
        try transition("start", from: [.created], to: .running)
        do {
            try initProcess.start()
        } catch {
            initProcess.kill()
            status_.withLock { $0 = .stopped }
            throw error
        }
    }

    /// Runs `process` in the container's namespaces and cgroup; returns it running.
    public func exec(id execID: String, process: OCIProcess, stdio: ContainerStdio) throws(ContainerError) -> ContainerProcess {
        let current = status
        guard current == .running else {
            throw .invalidTransition(id: id, from: current.rawValue, operation: "exec")
        }
        let plan = try SpecValidation.process(process, field: "process", seccomp: seccomp)
        let stdio = plan.terminal ? .terminal : stdio
        try execs.withLock { e throws(ContainerError) in
            if e[execID] != nil { throw .duplicateProcess(id: id, execID: execID) }
        }
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for name in ["ipc", "uts", "pid", "mnt"] {
            let fd = ks_ctr_open_ns(initProcess.pid, name)
            guard fd >= 0 else { throw .system(id: id, operation: "open /proc/\(initProcess.pid)/ns/\(name)", errno: -fd) }
            fds.append(fd)
        }
        var pending = try Launcher.spawn(id: id, process: plan, root: nil, namespaceFDs: fds, cgroup: cgroup, stdio: stdio)
        do {
            try Launcher.advance(id: id, &pending, expectReady: true, root: nil)
        } catch {
            Launcher.abort(pending)
            throw error
        }
        let proc = ContainerProcess(containerID: id, execID: execID, pending: pending)
        do {
            try proc.start()
        } catch {
            proc.kill()
            throw error
        }
        execs.withLock { $0[execID] = proc }
        return proc
    }

    /// Drops an exec process that has exited (its pidfd closes with it), so a long-lived
    /// container's execs do not accumulate. False, and nothing dropped, while it runs.
    @discardableResult
    public func forgetExec(_ execID: String) -> Bool {
        guard let process = execs.withLock({ $0[execID] }), case .exited = process.status else { return false }
        execs.withLock { $0[execID] = nil }
        return true
    }

    /// The exec processes started so far (not the init).
    public func execProcesses() -> [ContainerProcess] {
        execs.withLock { Array($0.values) }
    }

    public func process(_ execID: String) throws(ContainerError) -> ContainerProcess {
        guard let p = execs.withLock({ $0[execID] }) else { throw .unknownProcess(id: id, execID: execID) }
        return p
    }

    /// Sends `signo` to the init process.
    public func signal(_ signo: Int32) throws(ContainerError) {
        let current = status
        guard current != .stopped else { throw .processFinished(id: id) }
        try initProcess.signal(signo)
    }

    /// Blocks until the init process exits; its exit code or 128+signal. Exec processes are
    /// the engine's children (CLONE_PARENT) but live in the container's pid namespace, whose
    /// init cannot finish exiting while one of them is an unreaped zombie: reap them meanwhile.
    public func wait() -> Int32 {
        while true {
            for p in execProcesses() { _ = p.status }
            if let s = initProcess.wait(timeoutMillis: 50) {
                status_.withLock { $0 = .stopped }
                return s
            }
        }
    }

    public func pause() throws(ContainerError) {
        let cg = try requireCgroup("pause")
        try transition("pause", from: [.running], to: .paused)
        do { try cg.setFrozen(true) } catch {
            status_.withLock { $0 = .running }
            throw error
        }
    }

    public func resume() throws(ContainerError) {
        let cg = try requireCgroup("resume")
        try transition("resume", from: [.paused], to: .running)
        do { try cg.setFrozen(false) } catch {
            status_.withLock { $0 = .paused }
            throw error
        }
    }

    public func stats() throws(ContainerError) -> CgroupStats {
        try requireCgroup("read stats").stats()
    }

    /// Applies new limits (the Update RPC).
    public func update(_ resources: OCIResources) throws(ContainerError) {
        let current = status
        guard current != .stopped else { throw .invalidTransition(id: id, from: "stopped", operation: "update") }
        try requireCgroup("update resources").apply(resources)
    }

    /// Removes the container: kills it first when `force` (or when it never started), reaps it
    /// and removes its cgroup. A running container without `force` is an invalid transition.
    public func delete(force: Bool = false) throws(ContainerError) {
        let current = status
        switch current {
        case .stopped: break
        case .created: initProcess.kill()
        case .running, .paused:
            guard force else { throw .invalidTransition(id: id, from: current.rawValue, operation: "delete") }
            try? initProcess.signal(SIGKILL)
            if current == .paused { try? cgroup?.setFrozen(false) }
            _ = wait()
        }
        status_.withLock { $0 = .stopped }
        let procs = execs.withLock { e in
            defer { e.removeAll() }
            return Array(e.values)
        }
        for p in procs { _ = p.wait() }  // they die with the pid namespace's init
        cgroup?.destroy(created: cgroupDirs)
    }

    private func requireCgroup(_ op: String) throws(ContainerError) -> any ContainerCgroup {
        guard let cgroup else { throw .invalidTransition(id: id, from: "without a cgroup", operation: op) }
        return cgroup
    }

    private func transition(_ op: String, from: Set<Status>, to: Status) throws(ContainerError) {
        let current = status
        try status_.withLock { s throws(ContainerError) in
            guard from.contains(current), from.contains(s) else {
                throw .invalidTransition(id: id, from: current.rawValue, operation: op)
            }
            s = to
        }
    }
}
