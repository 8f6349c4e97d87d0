// Every process of a container: from its cgroup (cgroup.procs), or, without a cgroup, its init
// and exec processes. Used for ListProcesses and SignalProcess{all}.
import Glibc

extension ContainerCgroup {
    /// The pids in this cgroup (the engine's pid namespace), sorted.
    public func processIDs() -> [Int32] {
        guard let text = readSmallFile(path + "/cgroup.procs") else { return [] }
        return text.split(separator: "\n").compactMap { Int32($0) }.sorted()
    }
}

extension Container {
    /// Guest pids of every process of the container; empty once it has stopped.
    public func processIDs() -> [Int32] {
        if status == .stopped { return [] }
        if let cgroup { return cgroup.processIDs() }
        var pids = [initProcess.pid]
        for p in execProcesses() {
            if case .exited = p.status { continue }
            pids.append(p.pid)
        }
        return pids.sorted()
    }

    /// Sends `signo` to every process of the container. A paused container is thawed for
    /// SIGKILL (a frozen task cannot die).
    public func signalAll(_ signo: Int32) throws(ContainerError) {
        let current = status
        guard current != .stopped else { throw .processFinished(id: id) }
        if cgroup == nil {
            try initProcess.signal(signo)
            for p in execProcesses() { try? p.signal(signo) }
            return
        }
        for pid in processIDs() where kill(pid, signo) != 0 && errno != ESRCH {
            throw .system(id: id, operation: "kill \(pid) with \(signo)", errno: errno)
        }
        if signo == SIGKILL && current == .paused { try? cgroup?.setFrozen(false) }
    }
}
