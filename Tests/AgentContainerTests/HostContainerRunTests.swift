// The agent API on this host (root, no VM): containers from a busybox rootfs, driven over ttrpc
// with the generated client exactly as the shim drives them.
import AgentAPI
import Foundation
import Glibc
import GuestContainers
import OCI
import TTRPC
import Testing

@Suite("Agent containers on the host", .serialized) struct HostContainerRunTests {
    func withAgent(_ body: (HostAgent, ContainerDriver, String) async throws -> Void) async throws {
        let agent = try await HostAgent.start()
        do {
            try await body(agent, agent.driver, try BusyboxRootfs.hostPath())
        } catch {
            await agent.stop()
            throw error
        }
        await agent.stop()
    }

    @Test func echoExitCodeAndStdin() async throws {
        try await withAgent { _, d, rootfs in
            let echo = try await d.run(HostAgent.uniqueID("echo"), BusyboxRootfs.spec(["echo", "hello"], rootfs: rootfs))
            #expect(echo.status == 0)
            #expect(echo.stdoutText == "hello\n")
            #expect(echo.stderr.isEmpty)

            let exit7 = try await d.run(HostAgent.uniqueID("exit7"), BusyboxRootfs.spec(["sh", "-c", "exit 7"], rootfs: rootfs))
            #expect(exit7.status == 7)

            let cat = try await d.run(
                HostAgent.uniqueID("cat"), BusyboxRootfs.spec(["cat"], rootfs: rootfs), input: Array("from stdin\nline 2\n".utf8))
            #expect(cat.status == 0)
            #expect(cat.stdoutText == "from stdin\nline 2\n")

            let err = try await d.run(HostAgent.uniqueID("stderr"), BusyboxRootfs.spec(["sh", "-c", "echo oops >&2; exit 3"], rootfs: rootfs))
            #expect(err.status == 3)
            #expect(err.stderrText == "oops\n")
            #expect(err.stdout.isEmpty)
        }
    }

    @Test func tenMiBOfOutputArrivesIntact() async throws {
        try await withAgent { _, d, rootfs in
            // seq 1 1400000 is 10,088,896 bytes of known text; 400,000 z make it more than 10 MiB.
            let spec = BusyboxRootfs.spec(["sh", "-c", "seq 1 1400000; head -c 400000 /dev/zero | tr '\\0' z"], rootfs: rootfs)
            let t0 = ContinuousClock.now
            let r = try await d.run(HostAgent.uniqueID("big"), spec)
            let elapsed = ContinuousClock.now - t0
            var expected = (1...1_400_000).map { String($0) }.joined(separator: "\n") + "\n"
            expected += String(repeating: "z", count: 400_000)
            #expect(r.status == 0)
            #expect(r.stdout.count == expected.utf8.count)
            #expect(r.stdout.count >= 10 << 20)
            #expect(r.stdout == Array(expected.utf8), "output differs")
            print("agent-containers: \(r.stdout.count) bytes of stdout through ReadStdout in \(elapsed)")
        }
    }

    @Test func userHostnameReadOnlyRootAndSeccomp() async throws {
        try await withAgent { _, d, rootfs in
            let id = try await d.run(
                HostAgent.uniqueID("id"), BusyboxRootfs.spec(["id"], rootfs: rootfs, user: OCIUser(uid: 1000, gid: 1000)))
            #expect(id.stdoutText == "uid=1000(user) gid=1000(user)\n")

            let host = try await d.run(HostAgent.uniqueID("host"), BusyboxRootfs.spec(["hostname"], rootfs: rootfs, hostname: "kata-box"))
            #expect(host.stdoutText == "kata-box\n")

            let ro = try await d.run(
                HostAgent.uniqueID("ro"), BusyboxRootfs.spec(["sh", "-c", "touch /x || echo denied; touch /tmp/ok && echo tmp-ok"], rootfs: rootfs))
            #expect(ro.stdoutText == "denied\ntmp-ok\n")
            #expect(ro.stderrText.contains("Read-only file system"), "\(ro.stderrText)")

            var spec = BusyboxRootfs.spec(["mkdir", "/tmp/d"], rootfs: rootfs)
            spec.linux?.seccomp = BusyboxRootfs.denyMkdir
            let sc = try await d.run(HostAgent.uniqueID("seccomp"), spec)
            #expect(sc.status == 1)
            #expect(sc.stderrText.contains("Operation not permitted"), "\(sc.stderrText)")
        }
    }

    @Test(.enabled(if: HostAgent.memoryLimitSkipReason == nil, "\(HostAgent.memoryLimitSkipReason ?? "")"))
    func memoryLimitIsEnforcedAndReportedAsOOM() async throws {
        try await withAgent { agent, d, rootfs in
            let id = HostAgent.uniqueID("oom")
            var spec = BusyboxRootfs.spec(["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"], rootfs: rootfs)
            spec.linux?.resources = OCIResources(memory: .init(limit: 32 << 20), pids: .init(limit: 32))
            spec.linux?.cgroupsPath = "/ks-\(id)"
            let oom = Task { try await d.agent.getOOMEvent(.init()) }
            try await d.create(id, spec)
            var statsRequest = Kata_Agent_V1_StatsContainerRequest()
            statsRequest.containerID = id
            #expect(try await d.agent.statsContainer(statsRequest).memoryLimitBytes == 32 << 20)
            try await d.start(id)
            let r = try await d.collect(id)
            #expect(r.status == 137, "\(r.stderrText)")
            let event = try await oom.value
            #expect(event.containerID == id)
            try await d.remove(id)
            _ = agent
        }
    }
}
