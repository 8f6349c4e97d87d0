// Exec, signals, pause/resume, stats, ListProcesses, tty, removal without leftovers, sandbox
// storages, hostile input and concurrency of the long-poll reads, through the agent API.
import AgentAPI
import Foundation
import Glibc
import GuestContainers
import OCI
import TTRPC
import Testing
import SystemSupport

@Suite("Agent container lifecycle on the host", .serialized) struct HostLifecycleTests {
    func withAgent(_ body: (HostAgent, ContainerDriver, String) async throws -> Void) async throws {
        let agent = try await HostAgent.start()
        // The concurrency runtime opens its timer descriptors on first use: before any snapshot.
        try await Task.sleep(for: .milliseconds(1))
        do {
            try await body(agent, agent.driver, try BusyboxRootfs.hostPath())
        } catch {
            await agent.stop()
            throw error
        }
        await agent.stop()
    }

    func execRequest(_ id: String, _ exec: String, _ args: [String], terminal: Bool = false) throws -> Kata_Agent_V1_ExecProcessRequest {
        var r = Kata_Agent_V1_ExecProcessRequest()
        r.containerID = id
        r.execID = exec
        r.processJson = try BusyboxRootfs.json(OCIProcess(terminal: terminal, args: args, env: ["PATH=/bin"], cwd: "/"))
        return r
    }

    @Test func execSignalsListPauseStatsAndCleanRemoval() async throws {
        try await withAgent { agent, d, rootfs in
            let before = LeakSnapshot.take()
            let id = HostAgent.uniqueID("life")
            try await d.create(id, BusyboxRootfs.spec(["sleep", "1000"], rootfs: rootfs))
            let initPID = try await d.start(id)
            #expect(initPID > 0)

            // exec into the running container: its pid namespace (sleep is pid 1 there).
            let e1 = try await d.agent.execProcess(try execRequest(id, "e1", ["sh", "-c", "echo in-ns; ps -o pid,args | grep -c sleep"]))
            #expect(e1.pid > 0)
            let r1 = try await d.collect(id, exec: "e1")
            #expect(r1.status == 0)
            #expect(r1.stdoutText.hasPrefix("in-ns\n"), "\(r1.stdoutText)")

            let e2 = try await d.agent.execProcess(try execRequest(id, "e2", ["sleep", "1000"]))
            var list = Kata_Agent_V1_ListProcessesRequest()
            list.containerID = id
            let pids = try await d.agent.listProcesses(list).pids
            #expect(pids.contains(initPID) && pids.contains(e2.pid), "\(pids) vs \(initPID), \(e2.pid)")

            // Pause: the processes freeze; stats still answer; resume.
            var pause = Kata_Agent_V1_PauseContainerRequest()
            pause.containerID = id
            _ = try await d.agent.pauseContainer(pause)
            await #expect(throws: TTRPCError.self) { _ = try await d.agent.pauseContainer(pause) }
            var stats = Kata_Agent_V1_StatsContainerRequest()
            stats.containerID = id
            let s = try await d.agent.statsContainer(stats)
            #expect(s.pidsCurrent >= 2)
            #expect(s.memoryUsageBytes > 0)
            var resume = Kata_Agent_V1_ResumeContainerRequest()
            resume.containerID = id
            _ = try await d.agent.resumeContainer(resume)

            // SIGTERM to an exec'd sleep: 128+15; SIGKILL to the init: 128+9.
            try await d.signal(id, exec: "e2", SIGTERM)
            #expect(try await d.wait(id, exec: "e2") == 143)
            try await d.signal(id, SIGKILL)
            #expect(try await d.wait(id) == 137)
            // A second WaitProcess returns the same status.
            #expect(try await d.wait(id) == 137)

            try await d.remove(id)
            await #expect(throws: TTRPCError.self) { _ = try await d.wait(id) }
            let after = await LeakSnapshot.settled(comparedTo: before)
            #expect(after.leftChildren(since: before).isEmpty, "children left")
            #expect(after.mounts == before.mounts, "mounts left")
            #expect(after.descriptors <= before.descriptors, "descriptors \(before.descriptors) -> \(after.descriptors): \(LeakSnapshot.describeDescriptors())")
            for dir in (HostAgent.containerOptions().cgroupV1Roots ?? [:]).values {
                #expect(access(dir + "/kata/" + id, F_OK) != 0, "cgroup \(dir)/kata/\(id) left")
            }
            _ = agent
        }
    }

    /// A long-lived container's finished execs are forgotten once waited for and drained: each
    /// used to keep its pidfd, and a guest agent at 1024 descriptors stopped answering (a soak
    /// of ~830 `ctr task exec` into one pod).
    @Test func finishedExecsAreForgottenAndLeakNothing() async throws {
        try await withAgent { _, d, rootfs in
            let id = HostAgent.uniqueID("execs")
            try await d.create(id, BusyboxRootfs.spec(["sleep", "1000"], rootfs: rootfs))
            _ = try await d.start(id)
            _ = try await d.agent.execProcess(try execRequest(id, "warm-up", ["true"]))
            _ = try await d.collect(id, exec: "warm-up")
            let before = LeakSnapshot.take()
            for i in 0..<40 {
                _ = try await d.agent.execProcess(try execRequest(id, "x\(i)", ["echo", "\(i)"]))
                let r = try await d.collect(id, exec: "x\(i)")
                #expect(r.status == 0 && r.stdoutText == "\(i)\n", "exec \(i): \(r.status) \(r.stdoutText)")
            }
            let after = await LeakSnapshot.settled(comparedTo: before)
            #expect(after.descriptors <= before.descriptors, "descriptors \(before.descriptors) -> \(after.descriptors) after 40 execs: \(LeakSnapshot.describeDescriptors())")
            // A forgotten exec is unknown, and its id free again.
            await #expect(throws: TTRPCError.self) { _ = try await d.wait(id, exec: "x0") }
            _ = try await d.agent.execProcess(try execRequest(id, "x0", ["true"]))
            #expect(try await d.collect(id, exec: "x0").status == 0)
            try await d.signal(id, SIGKILL)
            _ = try await d.wait(id)
            try await d.remove(id)
        }
    }

    @Test func removeKillsWhatIsLeftAndForgetsIt() async throws {
        try await withAgent { _, d, rootfs in
            let before = LeakSnapshot.take()
            let id = HostAgent.uniqueID("rm")
            try await d.create(id, BusyboxRootfs.spec(["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000"], rootfs: rootfs))
            try await d.start(id)
            _ = try await d.agent.execProcess(try execRequest(id, "x", ["sleep", "1000"]))
            // Reads pending when the container goes must end with EOF, not hang.
            async let pending = d.drain(id)
            try await Task.sleep(for: .milliseconds(100))
            let t0 = ContinuousClock.now
            try await d.remove(id, timeout: 1)  // SIGTERM ignored: SIGKILL after 1 s
            #expect(ContinuousClock.now - t0 < .seconds(5))
            #expect(try await pending.isEmpty)
            var start = Kata_Agent_V1_StartContainerRequest()
            start.containerID = id
            await #expect { _ = try await d.agent.startContainer(start) } throws: { ($0 as? TTRPCError)?.code == .notFound }
            let after = await LeakSnapshot.settled(comparedTo: before)
            #expect(after.leftChildren(since: before).isEmpty, "children left: \(after.leftChildren(since: before))")
            #expect(after.mounts == before.mounts)
            #expect(after.descriptors <= before.descriptors, "descriptors \(before.descriptors) -> \(after.descriptors): \(LeakSnapshot.describeDescriptors())")
        }
    }

    @Test func terminalWithResize() async throws {
        try await withAgent { _, d, rootfs in
            let id = HostAgent.uniqueID("tty")
            try await d.create(id, BusyboxRootfs.spec(["sh", "-c", "stty size; tty; read x; echo got-$x"], rootfs: rootfs, terminal: true))
            var resize = Kata_Agent_V1_TtyWinResizeRequest()
            resize.containerID = id
            resize.row = 40
            resize.column = 100
            _ = try await d.agent.ttyWinResize(resize)
            try await d.start(id)
            let r = try await d.collect(id, input: Array("hello\n".utf8))
            #expect(r.status == 0)
            let text = r.stdoutText.replacingOccurrences(of: "\r", with: "")
            #expect(text.contains("40 100\n"), "\(text)")
            #expect(text.contains("/dev/pts/0\n"), "\(text)")
            #expect(text.contains("got-hello\n"), "\(text)")
            #expect(r.stderr.isEmpty)
            try await d.remove(id)

            // cat on a tty ends at CloseStdin (^D).
            let cat = HostAgent.uniqueID("ttycat")
            try await d.create(cat, BusyboxRootfs.spec(["cat"], rootfs: rootfs, terminal: true))
            try await d.start(cat)
            let rc = try await d.collect(cat, input: Array("abc".utf8))
            #expect(rc.status == 0)
            #expect(rc.stdoutText.contains("abc"))
            try await d.remove(cat)
        }
    }

    @Test func hostileInputGetsClearErrors() async throws {
        try await withAgent { _, d, rootfs in
            let before = LeakSnapshot.take()
            func code(_ body: () async throws -> Void) async -> TTRPCStatusCode? {
                do {
                    try await body()
                    return .ok
                } catch let e as TTRPCError {
                    return e.code
                } catch {
                    return nil
                }
            }
            var bad = Kata_Agent_V1_CreateContainerRequest()
            bad.containerID = HostAgent.uniqueID("bad")
            bad.ociSpecJson = Data("{\"process\": [".utf8)
            #expect(await code { _ = try await d.agent.createContainer(bad) } == .invalidArgument)
            bad.ociSpecJson = Data("{\"process\":{\"args\":[\"true\"],\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}},\"root\":{\"path\":\"rootfs\"}}".utf8)
            #expect(await code { _ = try await d.agent.createContainer(bad) } == .invalidArgument)
            bad.containerID = "../escape"
            #expect(await code { _ = try await d.agent.createContainer(bad) } == .invalidArgument)
            var spec = BusyboxRootfs.spec(["true"], rootfs: rootfs)
            spec.root?.path = "/does/not/exist"
            #expect(await code { try await d.create(HostAgent.uniqueID("noroot"), spec) } == .invalidArgument)

            #expect(await code { try await d.start("nope") } == .notFound)
            #expect(await code { _ = try await d.wait("nope") } == .notFound)
            #expect(await code { _ = try await d.drain("nope") } == .notFound)
            #expect(await code { _ = try await d.write("nope", [1]) } == .notFound)
            #expect(await code { try await d.remove("nope") } == .notFound)
            #expect(await code { try await d.signal("nope", 99) } == .invalidArgument)

            let id = HostAgent.uniqueID("dup")
            try await d.create(id, BusyboxRootfs.spec(["sleep", "1000"], rootfs: rootfs))
            #expect(await code { try await d.create(id, BusyboxRootfs.spec(["true"], rootfs: rootfs)) } == .alreadyExists)
            #expect(await code { _ = try await d.agent.execProcess(try execRequest(id, "e", ["true"])) } == .failedPrecondition)
            try await d.start(id)
            #expect(await code { try await d.start(id) } == .failedPrecondition)
            _ = try await d.agent.execProcess(try execRequest(id, "e", ["true"]))
            #expect(await code { _ = try await d.agent.execProcess(try execRequest(id, "e", ["true"])) } == .alreadyExists)
            #expect(await code { _ = try await d.wait(id, exec: "missing") } == .notFound)
            var notJSON = try execRequest(id, "f", ["true"])
            notJSON.processJson = Data("not json".utf8)
            #expect(await code { _ = try await d.agent.execProcess(notJSON) } == .invalidArgument)
            var resize = Kata_Agent_V1_TtyWinResizeRequest()
            resize.containerID = id
            resize.row = 10
            resize.column = 10
            #expect(await code { _ = try await d.agent.ttyWinResize(resize) } == .failedPrecondition)
            try await d.remove(id)
            let after = await LeakSnapshot.settled(comparedTo: before)
            #expect(after.leftChildren(since: before).isEmpty, "children left: \(after.leftChildren(since: before))")
            #expect(after.mounts == before.mounts)
            #expect(after.descriptors <= before.descriptors, "descriptors \(before.descriptors) -> \(after.descriptors): \(LeakSnapshot.describeDescriptors())")
        }
    }

    @Test func pendingReadsNeverStallOtherCalls() async throws {
        try await withAgent { _, d, rootfs in
            let id = HostAgent.uniqueID("poll")
            try await d.create(id, BusyboxRootfs.spec(["sleep", "1000"], rootfs: rootfs))
            try await d.start(id)
            // Many more pending long-polls (and a pending wait) than the pool has threads.
            let reads = (0..<16).map { i in Task { try await d.drain(id, stderr: i % 2 == 1) } }
            let wait = Task { try await d.wait(id) }
            try await Task.sleep(for: .milliseconds(200))
            let health = Kata_Agent_V1_HealthClient(d.agent.connection)
            let t0 = ContinuousClock.now
            for _ in 0..<50 { _ = try await health.check(.init()) }
            var list = Kata_Agent_V1_ListProcessesRequest()
            list.containerID = id
            #expect(try await d.agent.listProcesses(list).pids.count == 1)
            let elapsed = ContinuousClock.now - t0
            #expect(elapsed < .seconds(5), "50 calls took \(elapsed) with reads pending")
            try await d.signal(id, SIGKILL)
            #expect(try await wait.value == 137)
            for r in reads { #expect(try await r.value.isEmpty) }
            try await d.remove(id)
        }
    }

    @Test func sandboxStoragesAndGuestClock() async throws {
        try await withAgent { _, d, _ in
            let mountPoint = "/tmp/ks-agentc-storage-\(getpid())/shared"
            var sandbox = Kata_Agent_V1_CreateSandboxRequest()
            sandbox.sandboxID = "sb"
            sandbox.hostname = "not-applied-on-a-host"
            var storage = Kata_Agent_V1_Storage()
            storage.driver = "tmpfs"
            storage.source = "ks-test"
            storage.fstype = "tmpfs"
            storage.options = ["size=1m", "nodev"]
            storage.mountPoint = mountPoint
            sandbox.storages = [storage]
            _ = try await d.agent.createSandbox(sandbox)
            let mounts = try readWholeTextFile("/proc/self/mountinfo")
            #expect(mounts.contains(" \(mountPoint) "), "storage not mounted")
            await #expect { _ = try await d.agent.createSandbox(sandbox) } throws: { ($0 as? TTRPCError)?.code == .failedPrecondition }
            var clock = Kata_Agent_V1_SetGuestDateTimeRequest()
            clock.sec = 1
            await #expect { _ = try await d.agent.setGuestDateTime(clock) } throws: { ($0 as? TTRPCError)?.code == .failedPrecondition }
            _ = try await d.agent.destroySandbox(.init())
            let after = try readWholeTextFile("/proc/self/mountinfo")
            #expect(!after.contains(" \(mountPoint) "), "storage left mounted")
            rmdir(mountPoint)
            rmdir("/tmp/ks-agentc-storage-\(getpid())")
        }
    }
}
