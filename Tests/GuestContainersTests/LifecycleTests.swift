// Lifecycle: signals, exec, pause/resume, invalid transitions and specs, cleanup, memory limits.
import Glibc
import GuestContainers
import OCI
import Testing

@Suite("Container lifecycle") struct LifecycleTests {
    private func sleeper(_ name: String, args: [String] = ["sleep", "100"]) throws -> Container {
        try Container.create(
            id: Fixture.uniqueID(name), spec: Fixture.spec(args), rootfs: try Fixture.rootfs(),
            stdio: .fds(stdin: -1, stdout: 2, stderr: 2), options: Fixture.options())
    }

    @Test func killGives128PlusSignal() throws {
        let c = try Container.create(
            id: Fixture.uniqueID("kill"), spec: Fixture.spec(["sleep", "100"]), rootfs: try Fixture.rootfs(),
            stdio: .fds(stdin: 0, stdout: 2, stderr: 2), options: Fixture.options())
        defer { try? c.delete(force: true) }
        #expect(c.status == .created)
        try c.start()
        #expect(c.status == .running)
        try c.signal(SIGKILL)
        #expect(c.wait() == 128 + 9)
        #expect(c.status == .stopped)
        #expect(throws: ContainerError.self) { try c.signal(SIGTERM) }
    }

    @Test func execJoinsThePidNamespace() throws {
        let c = try Container.create(
            id: Fixture.uniqueID("exec"), spec: Fixture.spec(["sleep", "100"]), rootfs: try Fixture.rootfs(),
            stdio: .fds(stdin: 0, stdout: 2, stderr: 2), options: Fixture.options())
        defer { try? c.delete(force: true) }
        try c.start()
        let out = try Pipe()
        let p = try c.exec(
            id: "e1", process: OCIProcess(args: ["sh", "-c", "cat /proc/1/cmdline; echo; echo $$; hostname"], env: ["PATH=/bin"]),
            stdio: .fds(stdin: 0, stdout: out.write, stderr: out.write))
        out.closeWrite()
        let text = String(decoding: readAll(out.read, keep: true).bytes, as: UTF8.self)
        #expect(p.wait() == 0)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first == "sleep\u{0}100\u{0}", "\(lines)")
        #expect(lines.count >= 2 && lines[1] != "1" && Int(lines[1]) != nil, "\(lines)")
        #expect(throws: ContainerError.self) {
            _ = try c.exec(id: "e1", process: OCIProcess(args: ["true"]), stdio: .fds(stdin: 0, stdout: 2, stderr: 2))
        }
        try c.signal(SIGKILL)
        #expect(c.wait() == 137)
    }

    /// A pod's container joins its sandbox container's ipc and uts namespaces by path (and gets
    /// a pid and mount namespace of its own); a path that is not such a namespace is refused.
    @Test func podContainerJoinsTheSandboxContainersNamespaces() throws {
        let sandbox = try Container.create(
            id: Fixture.uniqueID("pod"), spec: Fixture.spec(["sleep", "100"], hostname: "pod-host"),
            rootfs: try Fixture.rootfs(), stdio: .fds(stdin: 0, stdout: 2, stderr: 2), options: Fixture.options())
        defer { try? sandbox.delete(force: true) }
        try sandbox.start()
        let pid = sandbox.initProcess.pid
        var spec = Fixture.spec(["sh", "-c", "hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid; echo $$"])
        spec.hostname = nil
        spec.linux?.namespaces = [
            OCINamespace(type: "pid"), OCINamespace(type: "mount"), OCINamespace(type: "network"),
            OCINamespace(type: "ipc", path: "/proc/\(pid)/ns/ipc"), OCINamespace(type: "uts", path: "/proc/\(pid)/ns/uts"),
        ]
        let r = try Fixture.run(spec, name: "member")
        #expect(r.status == 0, "\(r.stderr)")
        func link(_ path: String) -> String {
            var buffer = [CChar](repeating: 0, count: 256)
            let n = readlink(path, &buffer, 255)
            return n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        }
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(r.stdout)")
        #expect(lines.first == "pod-host")
        #expect(lines.dropFirst().first == link("/proc/\(pid)/ns/ipc"))
        #expect(lines.dropFirst(2).first != link("/proc/\(pid)/ns/pid"))
        #expect(lines.last == "1")

        for (type, path) in [("ipc", "/proc/\(pid)/ns/uts"), ("uts", "/etc/hostname"), ("mount", "/proc/\(pid)/ns/mnt")] {
            var bad = Fixture.spec(["true"])
            bad.linux?.namespaces = ["pid", "mount", "ipc", "uts"].filter { $0 != type }.map { OCINamespace(type: $0) }
                + [OCINamespace(type: type, path: path)]
            #expect(throws: ContainerError.self, "\(type) -> \(path)") {
                _ = try Container.create(
                    id: Fixture.uniqueID("bad-ns"), spec: bad, rootfs: try Fixture.rootfs(),
                    stdio: .fds(stdin: 0, stdout: 2, stderr: 2), options: Fixture.options())
            }
        }
        try sandbox.signal(SIGKILL)
        #expect(sandbox.wait() == 137)
    }

    @Test func execWithTerminalAndUser() throws {
        let c = try sleeper("exectty")
        defer { try? c.delete(force: true) }
        try c.start()
        var proc = OCIProcess(
            terminal: true, user: OCIUser(uid: 1000, gid: 1000), args: ["sh", "-c", "tty; id -u; grep user /etc/passwd"],
            env: ["PATH=/bin"], cwd: "/tmp")
        proc.noNewPrivileges = true
        let p = try c.exec(id: "t", process: proc, stdio: .fds(stdin: -1, stdout: -1, stderr: -1))
        let master = try #require(p.terminalMaster)
        try p.resizeTerminal(rows: 40, cols: 100)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        #expect(p.wait() == 0)
        let text = String(decoding: out, as: UTF8.self)
        #expect(text.contains("/dev/pts/") && text.contains("1000\r\n") && text.contains("user:x:1000"), "\(text)")
    }

    @Test func execOfMissingBinaryReportsExecve() throws {
        let c = try sleeper("noexe")
        defer { try? c.delete(force: true) }
        try c.start()
        #expect {
            _ = try c.exec(id: "x", process: OCIProcess(args: ["no-such-binary"]), stdio: .fds(stdin: 0, stdout: 2, stderr: 2))
        } throws: { e in
            "\(e)".contains("execve: No such file or directory")
        }
    }

    @Test func invalidTransitionsThrow() throws {
        let c = try sleeper("trans")
        defer { try? c.delete(force: true) }
        #expect(throws: ContainerError.self) { _ = try c.exec(id: "a", process: OCIProcess(args: ["true"]), stdio: .fds(stdin: 0, stdout: 2, stderr: 2)) }
        #expect(throws: ContainerError.self) { try c.resume() }
        try c.start()
        #expect(throws: ContainerError.self) { try c.start() }
        #expect(throws: ContainerError.self) { try c.delete() }
        try c.delete(force: true)
        #expect(c.status == .stopped)
    }

    @Test(.enabled(if: Fixture.options().cgroupRoot != nil, "needs a writable cgroup v2 at \(Fixture.cgroupRoot)"))
    func pauseAndResumeFreezeTheCgroup() throws {
        let c = try sleeper("pause")
        defer { try? c.delete(force: true) }
        try c.start()
        let cg = try #require(c.cgroup)
        // Every non-root cgroup v2 has cgroup.freeze since Linux 5.2: its absence is a failure.
        try #require(access(cg.path + "/cgroup.freeze", W_OK) == 0, "\(cg.path) has no writable cgroup.freeze")
        try c.pause()
        #expect(c.status == .paused)
        #expect(throws: ContainerError.self) { try c.pause() }
        let state = try String(contentsOfFileAt: "/proc/\(c.initProcess.pid)/stat")
        #expect(state.contains(") S ") || state.contains(") D "), "\(state)")
        try c.resume()
        #expect(c.status == .running)
        let procs = try String(contentsOfFileAt: cg.path + "/cgroup.procs")
        #expect(procs.split(separator: "\n").contains(Substring(String(c.initProcess.pid))))
        // An exec is born in the container's cgroup too (cloned into it, never moved there).
        let exec = try c.exec(id: "in-cgroup", process: OCIProcess(args: ["sleep", "30"]), stdio: .fds(stdin: -1, stdout: -1, stderr: -1))
        let execProcs = try String(contentsOfFileAt: cg.path + "/cgroup.procs")
        #expect(execProcs.split(separator: "\n").contains(Substring(String(exec.pid))))
        _ = try c.stats()  // no controllers on this host: fields may be nil, must not throw
        try c.delete(force: true)
        #expect(access(cg.path, F_OK) != 0, "cgroup directory removed")
    }

    @Test func invalidSpecsNameTheField() throws {
        var spec = Fixture.spec(["true"])
        spec.process?.cwd = "relative"
        #expect(throws: ContainerError.invalidSpec(field: "process.cwd", reason: "must be an absolute path, got \"relative\"")) {
            _ = try Container.create(id: "bad1", spec: spec, rootfs: try Fixture.rootfs(), stdio: .fds(stdin: 0, stdout: 1, stderr: 2), options: Fixture.options())
        }
        spec = Fixture.spec(["true"])
        spec.process?.capabilities = OCICapabilities(all: ["CAP_CHOWN", "CAP_FLY"])
        #expect { _ = try Container.create(id: "bad2", spec: spec, rootfs: try Fixture.rootfs(), stdio: .fds(stdin: 0, stdout: 1, stderr: 2)) }
            throws: { "\($0)" == "invalid OCI spec: process.capabilities.bounding[1]: unknown capability \"CAP_FLY\"" }
        spec = Fixture.spec(["true"])
        spec.mounts?.append(OCIMount(destination: "/../etc", type: "tmpfs", source: "tmpfs"))
        #expect { _ = try Container.create(id: "bad3", spec: spec, rootfs: try Fixture.rootfs(), stdio: .fds(stdin: 0, stdout: 1, stderr: 2)) }
            throws: { "\($0)".contains("mounts[9].destination") }
        spec = Fixture.spec(["true"])
        spec.linux?.seccomp = OCISeccomp(defaultAction: "SCMP_ACT_DANCE")
        #expect { _ = try Container.create(id: "bad4", spec: spec, rootfs: try Fixture.rootfs(), stdio: .fds(stdin: 0, stdout: 1, stderr: 2)) }
            throws: { "\($0)".contains("linux.seccomp.defaultAction") }
    }

    @Test func setupFailureLeavesNothingBehind() throws {
        let before = leakSnapshot()
        var spec = Fixture.spec(["true"])
        spec.mounts?.append(OCIMount(destination: "/weird", type: "nosuchfs", source: "none"))
        let id = Fixture.uniqueID("fail")
        #expect {
            _ = try Container.create(id: id, spec: spec, rootfs: try Fixture.rootfs(), stdio: .fds(stdin: 0, stdout: 1, stderr: 2), options: Fixture.options())
        } throws: { e in
            "\(e)" == "container \(id): mount \(try! Fixture.rootfs())/weird: No such device"
        }
        var spec2 = Fixture.spec(["true"])
        spec2.process?.cwd = "/does/not/exist"
        #expect {
            _ = try Container.create(id: id, spec: spec2, rootfs: try Fixture.rootfs(), stdio: .fds(stdin: 0, stdout: 1, stderr: 2), options: Fixture.options())
        } throws: { "\($0)" == "container \(id): chdir: No such file or directory" }
        let after = leakSnapshot()
        #expect(after.mounts == before.mounts)
        // Other tests run in parallel: only our own failed children must be gone, so check no
        // child is left that is not accounted to a live container of another test.
        let leaked = Set(after.children).subtracting(before.children).filter { pid in
            (try? String(contentsOfFileAt: "/proc/\(pid)/cmdline"))?.isEmpty ?? false
        }
        #expect(leaked.isEmpty, "children stuck in setup: \(leaked)")
        if let root = Fixture.options().cgroupRoot {
            #expect(access(root + "/kata/" + id, F_OK) != 0, "cgroup removed")
        }
    }

    @Test(.enabled(if: Fixture.hasV2Memory, "no cgroup v2 memory controller at /sys/fs/cgroup/unified (the guest kernel has one)"))
    func memoryLimitKillsOnOOMv2() throws {
        try oomRun(Fixture.options())
    }

    @Test(.enabled(if: Fixture.v1Roots() != nil, "no writable cgroup v1 memory/cpu/cpuacct/pids/freezer hierarchies"))
    func memoryLimitKillsOnOOMv1() throws {
        try oomRun(ContainerOptions(cgroupV1Roots: Fixture.v1Roots()))
    }

    private func oomRun(_ options: ContainerOptions) throws {
        let id = Fixture.uniqueID("oom")
        var spec = Fixture.spec(["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"])
        spec.linux?.resources = OCIResources(
            memory: .init(limit: 32 << 20), cpu: .init(shares: 512, quota: 50_000, period: 100_000), pids: .init(limit: 32))
        spec.linux?.cgroupsPath = "/ks-\(id)"
        let c = try Container.create(
            id: id, spec: spec, rootfs: try Fixture.rootfs(), stdio: .fds(stdin: -1, stdout: -1, stderr: -1), options: options)
        defer { try? c.delete(force: true) }
        let stats = try c.stats()
        #expect(stats.memoryMax == 32 << 20)
        try c.start()
        #expect(c.wait() == 128 + 9)
        #expect((c.cgroup?.oomKillCount() ?? 0) >= 1)
        let path = try #require(c.cgroup?.path)
        try c.delete()
        #expect(access(path, F_OK) != 0, "cgroup removed")
    }

    @Test(.enabled(if: Fixture.v1Roots() != nil, "no writable cgroup v1 hierarchies"))
    func pauseResumeAndStatsOnV1() throws {
        let id = Fixture.uniqueID("v1")
        var spec = Fixture.spec(["sleep", "100"])
        spec.linux?.cgroupsPath = "/ks-\(id)"
        let c = try Container.create(
            id: id, spec: spec, rootfs: try Fixture.rootfs(), stdio: .fds(stdin: -1, stdout: -1, stderr: -1),
            options: ContainerOptions(cgroupV1Roots: Fixture.v1Roots()))
        defer { try? c.delete(force: true) }
        try c.start()
        try c.pause()
        #expect(c.status == .paused)
        try c.resume()
        let s = try c.stats()
        #expect(s.pidsCurrent == 1)
        #expect((s.memoryCurrent ?? 0) > 0)
        try c.update(OCIResources(pids: .init(limit: 5)))
        try c.signal(SIGKILL)
        #expect(c.wait() == 137)
    }
}
