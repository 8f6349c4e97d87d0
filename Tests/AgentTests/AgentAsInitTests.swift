// The static kata-agent as PID 1: in a fresh PID + mount namespace on the host (chroot into a
// directory with no /proc: the C constructor mounts it), and in a real guest under QEMU/TCG.

import AgentAPI
import Foundation
import TTRPC
import Testing

@Suite(.serialized, .timeLimit(.minutes(20)))
struct AgentAsInitTests {
    /// A root directory holding only /init (the static agent), busybox, and an empty /test.
    static func makeRoot(agent: String) throws -> String {
        let root = NSTemporaryDirectory() + "kata-agent-root-\(UUID().uuidString.prefix(8))"
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/test", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try fm.copyItem(atPath: agent, toPath: root + "/init")
        try fm.copyItem(atPath: "/bin/busybox", toPath: root + "/bin/busybox")
        return root
    }

    @Test func pid1InNamespacesMountsServesReapsAndPowersOff() async throws {
        let artifacts = try await StaticAgent.artifacts()
        let root = try Self.makeRoot(agent: artifacts.agentBinary)
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(!FileManager.default.fileExists(atPath: root + "/proc/self/exe"))

        // --cgroup: cgroup2's root flags (nsdelegate) are global when mounted from the initial
        // cgroup namespace; a child namespace keeps the host's untouched.
        let unshare = try WatchedProcess(
            executable: "/usr/bin/unshare",
            arguments: ["--mount", "--pid", "--cgroup", "--fork", "--kill-child", "chroot", root, "/init",
                        "--listen", "unix:///test/agent.sock", "--log-level", "debug"])
        try #require(await unshare.waitForLine(containing: "listening on unix:///test/agent.sock"))
        let log = unshare.log
        #expect(log.contains("starting as PID 1"))
        #expect(log.contains("early constructor mounted /proc"))
        for target in ["/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp", "/sys/fs/cgroup"] {
            #expect(log.contains(" on \(target)\n"), "no mount of \(target) in:\n\(log)")
        }

        let client = try await TTRPCClient.connect(unixSocketPath: root + "/test/agent.sock")
        #expect(try await Kata_Agent_V1_HealthClient(client).check(Kata_Agent_V1_CheckRequest()).status == .serving)
        let details = try await Kata_Agent_V1_AgentServiceClient(client).getGuestDetails(Kata_Agent_V1_GuestDetailsRequest())
        #expect(details.memTotalBytes > 0 && details.onlineCpus > 0)
        await client.close()

        // Orphans in the namespace are reparented to the agent, which must reap them.
        let agentPid = try #require(Self.onlyChild(of: unshare.pid))
        let orphans = try WatchedProcess(
            executable: "/usr/bin/nsenter",
            arguments: ["-t", String(agentPid), "-p", "-m", "-r", "/bin/busybox", "sh", "-c",
                        "/bin/busybox sh -c '/bin/busybox sleep 0.3; exit 7' & "
                        + "/bin/busybox sh -c '/bin/busybox sleep 0.3; kill -KILL $$' & exit 0"])
        #expect(await orphans.waitForExit() == 0)
        await unshare.waitForLine(containing: "exit code 7\n")
        await unshare.waitForLine(containing: "exit code 137\n")
        #expect(Self.zombies(inNamespaceOf: agentPid).isEmpty)

        // SIGTERM: the agent stops serving and powers off, which ends its PID namespace.
        kill(agentPid, SIGTERM)
        _ = await unshare.waitForExit()
        #expect(!unshare.process.isRunning)
        // reboot(RB_AUTOBOOT) by a namespace's init kills it with SIGHUP; unshare re-raises that.
        #expect(unshare.process.terminationReason == .uncaughtSignal)
        #expect(unshare.process.terminationStatus == SIGHUP)
        #expect(!FileManager.default.fileExists(atPath: root + "/test/agent.sock"), "socket file left behind")
        #expect(unshare.log.contains("stopped"))
        #expect(unshare.log.contains("powering off"))
    }

    @Test func bootsInQemuAsPid1AndListensOnVsock() async throws {
        let artifacts = try await StaticAgent.artifacts()
        let started = ContinuousClock.now
        let qemu = try WatchedProcess(executable: "/usr/bin/qemu-system-x86_64", arguments: Self.qemuArguments(artifacts, extra: "agent.log=debug"))
        try #require(await qemu.waitForLine(containing: "listening on vsock://-1:1024", timeout: .seconds(120)))
        let elapsed = ContinuousClock.now - started
        print("kata-agent: QEMU/TCG start to 'listening on vsock://-1:1024' in \(elapsed)")
        let console = qemu.log
        #expect(console.contains("Run /init as init process"))
        #expect(console.contains("starting as PID 1"))
        for target in ["/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp", "/sys/fs/cgroup"] {
            #expect(console.contains(" on \(target)\r\n") || console.contains(" on \(target)\n"), "no mount of \(target)")
        }
        #expect(!console.contains("Kernel panic"))
        _ = await qemu.stop(signal: SIGKILL)
    }

    @Test func fatalErrorInTheGuestIsPrintedAndEndsTheVM() async throws {
        let artifacts = try await StaticAgent.artifacts()
        let qemu = try WatchedProcess(
            executable: "/usr/bin/qemu-system-x86_64", arguments: Self.qemuArguments(artifacts, extra: "agent.listen=tcp://nowhere"))
        // The VM must end by itself: the agent powers off, QEMU (-no-reboot) exits.
        let status = await qemu.waitForExit(timeout: .seconds(120))
        #expect(status == 0, "QEMU still running or failed; console:\n\(qemu.log)")
        #expect(qemu.log.contains("fatal: configuration: invalid listen address 'tcp://nowhere'"))
        #expect(qemu.log.contains("powering off"))
        #expect(!qemu.log.contains("Attempted to kill init"))
        _ = await qemu.stop(signal: SIGKILL)
    }

    static func qemuArguments(_ artifacts: GuestArtifacts, extra: String) -> [String] {
        [
            "-M", "microvm,acpi=off", "-accel", "tcg", "-cpu", "max", "-m", "256", "-nographic", "-no-reboot",
            "-kernel", artifacts.kernel, "-initrd", artifacts.initramfs,
            "-append", "console=ttyS0 reboot=t panic=-1 tsc_early_khz=\(hostTSCKilohertz()) \(extra)",
        ]
    }

    /// TCG's guest TSC ticks at the host's rate, so the early TSC frequency must be the host's:
    /// a wrong value (e.g. 2000 kHz) makes the guest clock run about 1000x fast, and the console
    /// fills with RCU stall warnings that slow the boot down further.
    static func hostTSCKilohertz() -> Int {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let mhz = cpuinfo.split(separator: "\n").first { $0.hasPrefix("cpu MHz") }
            .flatMap { $0.split(separator: ":").last }
            .flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        return Int((mhz ?? 2000) * 1000)
    }

    /// The single child of `pid` (unshare's forked child: the agent, seen from the host).
    static func onlyChild(of pid: Int32) -> Int32? {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        let children = text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return children.count == 1 ? children[0] : nil
    }

    /// Host pids of zombie processes whose parent is `pid`.
    static func zombies(inNamespaceOf pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            .filter { child in
                let stat = (try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8)) ?? ""
                return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
            }
    }
}
