// The real thing: containerd 1.6 and ctr drive our shim, which boots a VM (our kernel, kata-agent)
// per container and runs busybox in it. Needs the guest images ($KATA_GUEST_KERNEL,
// $KATA_AGENT_INITRD, else build/guest), the agent's container engine and the virtio-fs share;
// without them each case fails with ctr's error text. After every case: no shim, no QEMU, no
// mount, no socket, no FIFO left, and containerd still answers.

import Foundation
import Shim
import Testing
import SystemSupport

@Suite(.serialized) struct VMRuntimeE2ETests {
    static let image = "docker.io/library/busybox:e2e"
    static let runtime = ["--runtime", "io.containerd.kata.v2"]

    /// containerd with KATA_CONF_FILE pointing at a configuration for the test images.
    /// With `rootImage`, the guest's root is that disk image instead of the initramfs.
    /// `extraTOML` is appended to the configuration (e.g. a `[factory]` table).
    static func start(_ name: String, sandboxDirectory: String? = nil, rootImage: String? = nil, extraTOML: String = "") throws -> ContainerdHarness {
        let (kernel, initrd) = try InstallE2ETests.guestImages()
        let configPath = "/tmp/ks-e2e-\(name)-\(getpid()).toml"
        try """
            [hypervisor.\(backend == "kvm" ? "kvm" : "qemu")]
            default_vcpus = \(vcpus)
            kernel = "\(kernel)"
            \(rootImage.map { "image = \"\($0)\"" } ?? "initrd = \"\(initrd)\"")
            [agent.kata]
            dial_timeout = 120
            [runtime]
            hypervisor_name = "\(backend)"
            sandbox_dir = "\(sandboxDirectory ?? sandboxRoot)"
            enable_debug = true
            \(extraTOML)
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        let harness = try ContainerdHarness(name: name, extraEnvironment: ["KATA_CONF_FILE": configPath])
        try harness.importBusybox(image)
        return harness
    }

    static var sandboxRoot: String { "/run/kata-swift-e2e-\(getpid())" }

    /// The backend every case runs on: KATA_E2E_BACKEND (the nested KVM host sets `kvm`), else
    /// `auto`, which picks QEMU/TCG on a host whose KVM runs no guest userspace.
    static var backend: String {
        ProcessInfo.processInfo.environment["KATA_E2E_BACKEND"].flatMap { $0.isEmpty ? nil : $0 } ?? "auto"
    }

    /// vCPUs per sandbox: KATA_E2E_VCPUS, else 1.
    static var vcpus: Int { ProcessInfo.processInfo.environment["KATA_E2E_VCPUS"].flatMap { Int($0) } ?? 1 }

    /// With an explicit backend, the shim's log must name it for the sandbox that just ran.
    static func expectBackendLogged(_ containerd: ContainerdHarness, sourceLocation: SourceLocation = #_sourceLocation) {
        guard backend != "auto" else { return }
        let wanted = backend == "kvm" ? "hypervisor backend: kvm (in-process VMM)" : "hypervisor backend: \(backend)"
        #expect(containerd.containerdLog().contains(wanted), "the shim's log does not say '\(wanted)'",
                sourceLocation: sourceLocation)
    }

    /// QEMU processes started for this test run's sandboxes.
    static func qemuProcesses() -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
            return cmdline.hasPrefix("/usr/bin/qemu") && cmdline.contains(sandboxRoot)
        }
    }

    /// Nothing left after a case, and containerd healthy.
    static func expectClean(_ containerd: ContainerdHarness, ids: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(waitUntil(seconds: 20) { containerd.shimProcesses().isEmpty }, "shims left: \(containerd.shimProcesses())",
                sourceLocation: sourceLocation)
        #expect(waitUntil(seconds: 10) { qemuProcesses().isEmpty }, "QEMU left: \(qemuProcesses())", sourceLocation: sourceLocation)
        #expect(containerd.mountsBelow().isEmpty, "mounts left: \(containerd.mountsBelow())", sourceLocation: sourceLocation)
        let runMounts = ((try? readWholeTextFile("/proc/self/mounts")) ?? "").split(separator: "\n")
            .filter { $0.contains(sandboxRoot) }
        #expect(runMounts.isEmpty, "sandbox mounts left: \(runMounts)", sourceLocation: sourceLocation)
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: sandboxRoot)) ?? []
        #expect(leftovers.isEmpty, "sandbox directories left: \(leftovers)", sourceLocation: sourceLocation)
        for id in ids {
            #expect(!FileManager.default.fileExists(atPath: containerd.shimSocket(group: id).path), "shim socket of \(id) left",
                    sourceLocation: sourceLocation)
            #expect(!FileManager.default.fileExists(atPath: containerd.bundlePath(id: id)), "bundle of \(id) left",
                    sourceLocation: sourceLocation)
        }
        let fifos = (try? FileManager.default.contentsOfDirectory(atPath: "/run/containerd/fifo")) ?? []
        #expect(fifos.isEmpty, "FIFOs left: \(fifos)", sourceLocation: sourceLocation)
        #expect(try containerd.ctr(["version"]).status == 0, "containerd unhealthy", sourceLocation: sourceLocation)
        #expect(try containerd.ctr(["tasks", "ls", "-q"]).stdout.isEmpty, sourceLocation: sourceLocation)
    }

    /// Runs a shell command line (for pipes and `script`), with ctr pointed at our containerd.
    static func shell(_ containerd: ContainerdHarness, _ line: String) throws -> CommandResult {
        try runCommand(["sh", "-c", line.replacingOccurrences(of: "CTR ", with: "ctr -a \(containerd.socket) ")])
    }

    @Test(.timeLimit(.minutes(10)))
    func runStdoutExitCodeAndEventsInOrder() async throws {
        let containerd = try Self.start("vmrun")
        defer { containerd.stop(); rmdir(Self.sandboxRoot) }
        let eventsFile = containerd.directory + "/events.txt"
        let events = try Self.shell(containerd, "CTR events > \(eventsFile) 2>&1 & echo $!")
        let eventsPID = Int32(events.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        defer { if eventsPID > 0 { kill(eventsPID, SIGTERM) } }
        try await Task.sleep(for: .milliseconds(300))

        let t0 = Date()
        let run = try containerd.ctr(["run", "--rm"] + Self.runtime + [
            Self.image, "r1", "sh", "-c", "echo hello from $(uname -r) on $(nproc) CPUs; ls /sys/bus/virtio/drivers/virtio_balloon",
        ])
        print("BENCH e2e: ctr run --rm (VM boot + echo): \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
        #expect(run.status == 0, "ctr said: \(run.stderr)")
        #expect(run.stdout.hasPrefix("hello from ") && run.stdout.contains("-kata-swift"), "stdout: \(run.stdout)")
        // Kata's default_vcpus rule: never more than the host has (the nested host has 1 CPU).
        let expected = min(Self.vcpus, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #expect(run.stdout.contains(" on \(expected) CPUs"), "the guest should see \(expected) vCPUs: \(run.stdout)")
        // Free page reporting: a balloon device (QEMU's, or our VMM's BalloonDevice) bound in the guest.
        #expect(run.stdout.contains("\nvirtio"), "no virtio-balloon device bound in the guest: \(run.stdout)")
        Self.expectBackendLogged(containerd)
        try Self.expectClean(containerd, ids: ["r1"])

        let failed = try containerd.ctr(["run", "--rm"] + Self.runtime + [Self.image, "r2", "sh", "-c", "exit 7"])
        #expect(failed.status == 7, "ctr said: \(failed.stderr)")
        try Self.expectClean(containerd, ids: ["r2"])

        try await Task.sleep(for: .milliseconds(500))
        let lines = ((try? String(contentsOfFile: eventsFile, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.contains("\"r1\"") || $0.contains("r1") }
        let topics = lines.compactMap { line -> String? in
            ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"].first { line.contains($0) }
        }
        #expect(topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], "events: \(lines)")
    }

    /// The agent's read-only ext4 image (KATA_AGENT_IMAGE, else build/guest/agent.img) as the
    /// guest's root disk instead of the initramfs (QEMU's virtio-blk, or our VMM's BlockDevice):
    /// the container runs, the guest booted from /dev/vda, and the balloon device is there to take
    /// back what the guest frees. The
    /// container's 384 MiB memory limit sizes the VM (128 MiB by default) to 512 MiB.
    @Test(.timeLimit(.minutes(10)))
    func runFromTheAgentImage() async throws {
        let image = ProcessInfo.processInfo.environment["KATA_AGENT_IMAGE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? repositoryRoot + "/build/guest/agent.img"
        try #require(access(image, R_OK) == 0, "\(image) missing: run `make agent-initramfs`")
        let containerd = try Self.start("vmimage", rootImage: image)
        defer { containerd.stop(); rmdir(Self.sandboxRoot) }
        let run = try containerd.ctr(
            ["run", "--rm", "--memory-limit", "\(384 << 20)"] + Self.runtime
                + [Self.image, "img1", "sh", "-c", "cat /proc/cmdline; ls /sys/bus/virtio/drivers/virtio_balloon; grep MemTotal /proc/meminfo"])
        #expect(run.status == 0, "ctr said: \(run.stderr)")
        #expect(run.stdout.contains("root=/dev/vda ro rootfstype=ext4"), "stdout: \(run.stdout)")
        #expect(run.stdout.contains("virtio"), "no balloon device bound in the guest: \(run.stdout)")
        let memTotalKiB = run.stdout.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } } ?? 0
        #expect(memTotalKiB > 440 << 10, "the guest should have about 512 MiB: \(run.stdout)")
        // The shim logs the start path, host and guest steps (bench/start-path.sh reads it).
        let log = containerd.containerdLog()
        let line = log.split(separator: "\n").first { $0.contains("start path (ms since the shim process started)") } ?? ""
        for step in ["configuration read", "VM starting", "VM running", "agent ready", "sandbox created", "container created",
                     "container started", "guest boot clock (ms): init exec"] {
            #expect(line.contains(step), "no '\(step)' in the start path: \(line)")
        }
        try Self.expectClean(containerd, ids: ["img1"])
    }

    @Test(.timeLimit(.minutes(10)))
    func runWithTerminalAndWithStdin() async throws {
        let containerd = try Self.start("vmtty")
        defer { containerd.stop(); rmdir(Self.sandboxRoot) }
        let tty = try Self.shell(containerd, "script -qec 'CTR run --rm -t \(Self.runtime.joined(separator: " ")) \(Self.image) t1 sh -c \"tty; echo tty-ok\"' /dev/null")
        #expect(tty.status == 0, "ctr said: \(tty.stdout) \(tty.stderr)")
        #expect(tty.stdout.contains("/dev/pts/") && tty.stdout.contains("tty-ok"), "tty output: \(tty.stdout)")
        try Self.expectClean(containerd, ids: ["t1"])

        // ctr 1.6 never closes a piped stdin (runc hangs on `cat` the same way): read two lines.
        let piped = try Self.shell(containerd, "printf 'one\\ntwo\\n' | CTR run --rm \(Self.runtime.joined(separator: " ")) \(Self.image) i1 head -n 2")
        #expect(piped.status == 0, "ctr said: \(piped.stderr)")
        #expect(piped.stdout == "one\ntwo\n", "stdout: \(piped.stdout)")
        try Self.expectClean(containerd, ids: ["i1"])
    }

    @Test(.timeLimit(.minutes(12)))
    func execKillPauseMetricsAndPs() async throws {
        let containerd = try Self.start("vmexec")
        defer { containerd.stop(); rmdir(Self.sandboxRoot) }
        let trapTerm = "trap 'exit 143' TERM; while true; do sleep 1; done"
        let detached = try containerd.ctr(["run", "-d"] + Self.runtime + [Self.image, "x1", "sh", "-c", trapTerm])
        #expect(detached.status == 0, "ctr said: \(detached.stderr)")

        let exec = try containerd.ctr(["task", "exec", "--exec-id", "e1", "x1", "sh", "-c", "echo exec-ok; exit 4"])
        #expect(exec.stdout == "exec-ok\n", "exec: \(exec.stdout) \(exec.stderr)")
        #expect(exec.status == 4)
        let execTTY = try Self.shell(containerd, "script -qec 'CTR task exec -t --exec-id e2 x1 sh -c \"tty; echo exec-tty-ok\"' /dev/null")
        #expect(execTTY.stdout.contains("/dev/pts/") && execTTY.stdout.contains("exec-tty-ok"), "exec -t: \(execTTY.stdout) \(execTTY.stderr)")

        let ps = try containerd.ctr(["task", "ps", "x1"])
        #expect(ps.status == 0 && ps.stdout.split(separator: "\n").count >= 2, "ps: \(ps.stdout) \(ps.stderr)")
        let metrics = try containerd.ctr(["task", "metrics", "x1"])
        #expect(metrics.status == 0 && metrics.stdout.contains("memory"), "metrics: \(metrics.stdout) \(metrics.stderr)")

        #expect(try containerd.ctr(["task", "pause", "x1"]).status == 0)
        #expect(try containerd.ctr(["task", "ls"]).stdout.contains("PAUSED"))
        #expect(try containerd.ctr(["task", "resume", "x1"]).status == 0)
        #expect(try containerd.ctr(["task", "ls"]).stdout.contains("RUNNING"))

        #expect(try containerd.ctr(["task", "kill", "-s", "SIGTERM", "x1"]).status == 0)
        #expect(waitUntil(seconds: 30) { (try? containerd.ctr(["task", "ls"]).stdout.contains("STOPPED")) == true })
        let deleted = try containerd.ctr(["task", "delete", "x1"])
        // ctr 1.6 reports a non-zero exit status as a warning and exits 0 (as it does with runc).
        #expect(deleted.status == 0 && deleted.stderr.contains("exit code 143"), "delete: \(deleted.status) \(deleted.stderr)")
        _ = try containerd.ctr(["containers", "delete", "x1"])
        try Self.expectClean(containerd, ids: ["x1"])

        #expect(try containerd.ctr(["run", "-d"] + Self.runtime + [Self.image, "k1", "sleep", "1000"]).status == 0)
        #expect(try containerd.ctr(["task", "kill", "-s", "SIGKILL", "k1"]).status == 0)
        #expect(waitUntil(seconds: 30) { (try? containerd.ctr(["task", "ls"]).stdout.contains("STOPPED")) == true })
        // Killing every process of a stopped container answers as runc does: "process already
        // finished", NotFound (containerd ignores that when it stops a pod), not a failure.
        let again = try containerd.ctr(["task", "kill", "-a", "-s", "SIGKILL", "k1"])
        #expect(again.status != 0 && again.stderr.contains("process already finished") && again.stderr.contains("not found"),
                "kill -a of a stopped task: \(again.status) \(again.stderr)")
        let killed = try containerd.ctr(["task", "delete", "k1"])
        #expect(killed.status == 0 && killed.stderr.contains("exit code 137"), "delete: \(killed.status) \(killed.stderr)")
        _ = try containerd.ctr(["containers", "delete", "k1"])
        try Self.expectClean(containerd, ids: ["k1"])
    }
}
