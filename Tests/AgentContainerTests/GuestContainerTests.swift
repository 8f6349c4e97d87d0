// Containers in a real guest: the hypervisor `auto` backend (QEMU/TCG here) boots our kernel with
// kata-agent as PID 1 and a busybox rootfs at /test-rootfs inside the initramfs (until the rootfs
// comes over virtio-fs); the host drives the agent API over vsock with the generated client.
import AgentAPI
import Foundation
import Glibc
import GuestImageTestSupport
import GuestContainers
import Hypervisor
import OCI
import SystemSupport
import TTRPC
import Testing

@Suite("Agent containers in a QEMU/TCG guest", .serialized) struct GuestContainerTests {
    static let rootfs = "/test-rootfs"

    @Test(.timeLimit(.minutes(15)))
    func containersRunInTheGuest() async throws {
        try await withGuest { d in try await run(d) }
    }

    /// 10 MiB through a container's stdout, over vsock (agent -> our vhost-user vsock device ->
    /// host). It stalled a few hundred KiB in until the vsock bridge kept draining a stream the
    /// socket had fully taken (docs/hypervisors.md).
    @Test(.timeLimit(.minutes(15)))
    func tenMiBOfOutputInTheGuest() async throws {
        try await withGuest { d in
            let t0 = ContinuousClock.now
            let big = try await d.run("big", spec(["head", "-c", "10485760", "/dev/zero"]))
            print("BENCH agent-containers guest: 10 MiB of stdout in \(ContinuousClock.now - t0)")
            #expect(big.status == 0)
            #expect(big.stdout.count == 10 << 20)
            #expect(big.stdout.allSatisfy { $0 == 0 })
        }
    }

    func withGuest(_ body: (ContainerDriver) async throws -> Void) async throws {
        signal(SIGPIPE, SIG_IGN)
        let paths = try TestImage.paths()
        let runtime = "/tmp/kata-swift-agentc-guest-\(getpid())"
        mkdir(runtime, 0o700)
        defer { rmdir(runtime) }
        let config = HypervisorConfig(
            kernelPath: paths.kernel, initrdPath: paths.initrd, memoryMiB: 512, backend: .auto, runtimeDirectory: runtime)
        let vm = try HypervisorFactory.make(config)
        print("agent-containers guest: backend \(vm.kind), initrd \(paths.initrd)")
        try await vm.start()
        do {
            let stream = try await vm.connectVsock(port: 1024, timeoutSeconds: 240)
            let client = try await TTRPCClient.connect(connectedDescriptor: dup(stream.rawValue))
            var d = ContainerDriver(agent: Kata_Agent_V1_AgentServiceClient(client))
            d.readLength = 64 << 10
            // A hang in the guest shows its console instead of a silent time-out.
            let watchdog = Task {
                try await Task.sleep(for: .seconds(300))
                print("agent-containers guest: still running after 300 s; console tail:\n\(vm.consoleTail)")
            }
            defer { watchdog.cancel() }
            try await body(d)
            try await client.close()
        } catch {
            print("agent-containers guest: console tail:\n\(vm.consoleTail)")
            await vm.stop()
            throw error
        }
        await vm.stop()
    }

    func spec(_ args: [String], hostname: String? = nil, user: OCIUser = OCIUser()) -> OCISpec {
        BusyboxRootfs.spec(args, rootfs: Self.rootfs, hostname: hostname, user: user)
    }

    func run(_ d: ContainerDriver) async throws {
        var sandbox = Kata_Agent_V1_CreateSandboxRequest()
        sandbox.sandboxID = "guest-test"
        sandbox.hostname = "kata-guest"
        _ = try await d.agent.createSandbox(sandbox)
        print("agent-containers guest: sandbox created")

        let echo = try await d.run("echo", spec(["echo", "hello"]))
        #expect(echo.status == 0)
        #expect(echo.stdoutText == "hello\n")
        print("agent-containers guest: echo \(echo.status) \(echo.stdoutText) \(echo.stderrText)")

        let exit7 = try await d.run("exit7", spec(["sh", "-c", "exit 7"]))
        #expect(exit7.status == 7)

        let cat = try await d.run("cat", spec(["cat"]), input: Array("from stdin\nline 2\n".utf8))
        #expect(cat.status == 0)
        #expect(cat.stdoutText == "from stdin\nline 2\n")

        let id = try await d.run("id", spec(["id"], user: OCIUser(uid: 1000, gid: 1000)))
        #expect(id.stdoutText == "uid=1000(user) gid=1000(user)\n")

        let host = try await d.run("host", spec(["hostname"], hostname: "kata-box"))
        #expect(host.stdoutText == "kata-box\n")

        let ro = try await d.run("ro", spec(["sh", "-c", "touch /x || echo denied; touch /tmp/ok && echo tmp-ok"]))
        #expect(ro.stdoutText == "denied\ntmp-ok\n")
        #expect(ro.stderrText.contains("Read-only file system"), "\(ro.stderrText)")

        var sc = spec(["mkdir", "/tmp/d"])
        sc.linux?.seccomp = BusyboxRootfs.denyMkdir
        let denied = try await d.run("seccomp", sc)
        #expect(denied.status == 1)
        #expect(denied.stderrText.contains("Operation not permitted"), "\(denied.stderrText)")

        // Memory limit on the guest's cgroup v2: dd's 100 MiB buffer does not fit in 32 MiB.
        var mem = spec(["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"])
        mem.linux?.resources = OCIResources(memory: .init(limit: 32 << 20), pids: .init(limit: 32))
        let oom = Task { try await d.agent.getOOMEvent(.init()) }
        try await d.create("oom", mem)
        var statsRequest = Kata_Agent_V1_StatsContainerRequest()
        statsRequest.containerID = "oom"
        #expect(try await d.agent.statsContainer(statsRequest).memoryLimitBytes == 32 << 20)
        try await d.start("oom")
        let killed = try await d.collect("oom")
        #expect(killed.status == 137, "\(killed.stderrText)")
        #expect(try await oom.value.containerID == "oom")
        try await d.remove("oom")

        // create -> start -> wait of `true`, measured from the host.
        var samples: [Duration] = []
        for i in 0..<5 {
            let name = "true\(i)"
            let t = ContinuousClock.now
            try await d.create(name, spec(["true"]))
            try await d.start(name)
            let status = try await d.wait(name)
            samples.append(ContinuousClock.now - t)
            #expect(status == 0)
            try await d.remove(name)
        }
        samples.sort()
        print("BENCH agent-containers guest: create->start->wait of true x5: median \(samples[2]), min \(samples[0]), max \(samples[4])")

        // Exec into a running container, then SIGKILL.
        try await d.create("long", spec(["sleep", "1000"]))
        try await d.start("long")
        var exec = Kata_Agent_V1_ExecProcessRequest()
        exec.containerID = "long"
        exec.execID = "e1"
        exec.processJson = try BusyboxRootfs.json(OCIProcess(args: ["echo", "exec-ok"], env: ["PATH=/bin"], cwd: "/"))
        _ = try await d.agent.execProcess(exec)
        let e = try await d.collect("long", exec: "e1")
        #expect(e.stdoutText == "exec-ok\n")
        try await d.signal("long", SIGKILL)
        #expect(try await d.wait("long") == 137)
        try await d.remove("long")

        _ = try await d.agent.destroySandbox(.init())
    }
}

/// The guest kernel and the agent initramfs with /test-rootfs (GuestImageTestSupport).
enum TestImage {
    static func paths() throws -> GuestImagePaths { try GuestImages.agentWithTestRootfs() }
}
