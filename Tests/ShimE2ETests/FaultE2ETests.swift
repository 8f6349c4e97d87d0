// Faults through containerd (docs/security.md, the fault table): the shim SIGKILLed, the
// hypervisor SIGKILLed, a guest kernel panic, containerd restarted under a running pod. Each must
// end with its outcome delivered (exit status, `ctr task ls` STOPPED), `delete` working, and
// nothing left: no shim, no QEMU, no mount, no sandbox directory, no socket.

import Foundation
import Shim
import Testing
import SystemSupport

/// Mount points below a directory, deepest first, unmounted lazily (test cleanup).
enum SandboxMountCleanup {
    static func unmountAll(below directory: String) {
        let mounts = ((try? readWholeTextFile("/proc/self/mounts")) ?? "").split(separator: "\n")
            .compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
            .filter { $0.hasPrefix(directory + "/") }
            .sorted { $0.count > $1.count }
        for point in mounts { umount2(point, Int32(MNT_DETACH)) }
    }
}

@Suite(.serialized) struct FaultE2ETests {
    typealias E2E = VMRuntimeE2ETests

    /// Starts `id` detached (`sleep 1000`), waits until it runs; returns the pod's shim pid.
    static func startSleeper(_ containerd: ContainerdHarness, _ id: String, extra: [String] = [], command: [String] = ["sleep", "1000"])
        throws -> Int32
    {
        let run = try containerd.ctr(["run", "-d"] + extra + E2E.runtime + [E2E.image, id] + command)
        #expect(run.status == 0, "ctr said: \(run.stderr)")
        #expect(waitUntil(seconds: 60) { (try? containerd.ctr(["task", "ls"]).stdout.contains("RUNNING")) == true })
        let shims = containerd.shimProcesses()
        #expect(shims.count == 1, "shims: \(shims)")
        return shims.first ?? -1
    }

    /// `ctr task ls` shows `id` STOPPED, and delete reports `code` (ctr prints a non-zero status as a warning).
    static func expectStoppedAndDelete(_ containerd: ContainerdHarness, _ id: String, code: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(waitUntil(seconds: 60) { (try? containerd.ctr(["task", "ls"]).stdout.contains("STOPPED")) == true },
                "task ls: \((try? containerd.ctr(["task", "ls"]).stdout) ?? "")", sourceLocation: sourceLocation)
        let deleted = try containerd.ctr(["task", "delete", id])
        #expect(deleted.status == 0, "delete: \(deleted.stderr)", sourceLocation: sourceLocation)
        #expect(deleted.stderr.contains("exit code \(code)"), "delete: \(deleted.stderr)", sourceLocation: sourceLocation)
        _ = try containerd.ctr(["containers", "delete", id])
    }

    @Test(.timeLimit(.minutes(5)))
    func shimSIGKILLedIsCleanedUpByTheDeleteAction() async throws {
        let containerd = try E2E.start("fshim")
        defer { containerd.stop(); rmdir(E2E.sandboxRoot) }
        let fifosBefore = Set((try? FileManager.default.contentsOfDirectory(atPath: "/run/containerd/fifo")) ?? [])
        let shim = try Self.startSleeper(containerd, "f1")
        let sandboxDirectory = E2E.sandboxRoot + "/f1"
        #expect(FileManager.default.fileExists(atPath: sandboxDirectory))
        #expect(kill(shim, SIGKILL) == 0)
        // containerd sees the shim go, runs `containerd-shim-kata-v2 delete` (which removes what the
        // shim left), publishes the exit and deletes the task itself, as it does for runc.
        #expect(waitUntil(seconds: 60) { (try? containerd.ctr(["task", "ls", "-q"]).stdout.isEmpty) == true },
                "task ls: \((try? containerd.ctr(["task", "ls"]).stdout) ?? "")")
        #expect(waitUntil(seconds: 30) { !FileManager.default.fileExists(atPath: sandboxDirectory) }, "sandbox directory left")
        #expect(try containerd.ctr(["containers", "delete", "f1"]).status == 0)
        // ctr's own stdio FIFOs: ctr removes them when it deletes the task, which containerd did
        // here instead (the same with runc); they are the client's, not the shim's.
        let fifos = Set((try? FileManager.default.contentsOfDirectory(atPath: "/run/containerd/fifo")) ?? [])
        for leftover in fifos.subtracting(fifosBefore) {
            try? FileManager.default.removeItem(atPath: "/run/containerd/fifo/" + leftover)
        }
        #expect(waitUntil(seconds: 10) { containerd.containerdLog().contains("the shim of sandbox f1 is gone") },
                "delete did not report its cleanup")
        try E2E.expectClean(containerd, ids: ["f1"])
    }

    @Test(.timeLimit(.minutes(5)), .enabled(if: E2E.backend != "kvm", "the kvm backend has no hypervisor process of its own"))
    func hypervisorSIGKILLedEndsTheTaskWith255() async throws {
        let containerd = try E2E.start("fqemu")
        defer { containerd.stop(); rmdir(E2E.sandboxRoot) }
        _ = try Self.startSleeper(containerd, "f2")
        let qemu = E2E.qemuProcesses()
        try #require(qemu.count == 1, "QEMU processes: \(qemu)")
        // The shim's default configuration confines QEMU: its seccomp filter, and an unprivileged
        // uid of the sandbox's own once the guest runs (docs/security.md 8.2).
        let status = (try? String(contentsOfFile: "/proc/\(qemu[0])/status", encoding: .utf8)) ?? ""
        #expect(status.contains("Seccomp:\t2") && status.contains("NoNewPrivs:\t1"), "QEMU status: \(status)")
        let uid = ShimConfinementE2ETests.qemuUID(qemu[0])
        #expect(uid.map { ShimConfinementE2ETests.qemuUIDs.contains($0) } == true,
                "QEMU status: \(status)")
        #expect(kill(qemu[0], SIGKILL) == 0)
        try Self.expectStoppedAndDelete(containerd, "f2", code: 255)
        try E2E.expectClean(containerd, ids: ["f2"])
    }

    /// A privileged container makes the guest kernel panic on out-of-memory, then exhausts the
    /// guest's memory: the VM stops, the task ends with 255.
    @Test(.timeLimit(.minutes(6)))
    func guestKernelPanicEndsTheTaskWith255() async throws {
        let containerd = try E2E.start("fpanic")
        defer { containerd.stop(); rmdir(E2E.sandboxRoot) }
        let script = "echo 1 > /proc/sys/vm/panic_on_oom && echo armed && tail /dev/zero"
        let run = try containerd.ctr(["run", "--rm", "--privileged"] + E2E.runtime + [E2E.image, "f3", "sh", "-c", script])
        #expect(run.stdout.contains("armed"), "stdout: \(run.stdout) stderr: \(run.stderr)")
        #expect(run.status == 255, "ctr run: \(run.status) \(run.stderr)")
        #expect(containerd.containerdLog().contains("Kernel panic"), "the shim's log should carry the guest's panic")
        try E2E.expectClean(containerd, ids: ["f3"])
    }

    /// The file system holding the sandbox directories is full: Create fails with the reason,
    /// nothing is left, and once there is room again the next pod runs.
    @Test(.timeLimit(.minutes(5)))
    func fullSandboxFileSystemFailsCreateCleanly() async throws {
        let full = E2E.sandboxRoot + "-full"
        mkdir(full, 0o700)
        // A tmpfs with 64 inodes, all taken: mkdir and socket creation fail with ENOSPC.
        try #require(mount("tmpfs", full, "tmpfs", 0, "size=1m,nr_inodes=64,mode=700") == 0, "mount tmpfs: \(errno)")
        defer {
            SandboxMountCleanup.unmountAll(below: full)
            umount2(full, Int32(MNT_DETACH))
            rmdir(full)
        }
        var filler = 0
        while FileManager.default.createFile(atPath: full + "/filler-\(filler)", contents: nil) { filler += 1 }
        #expect(filler > 0 && filler < 64)
        let containerd = try E2E.start("ffull", sandboxDirectory: full)
        defer { containerd.stop() }
        let run = try containerd.ctr(["run", "--rm"] + E2E.runtime + [E2E.image, "f5", "echo", "hello"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("No space left on device"), "ctr said: \(run.stderr)")
        _ = try containerd.ctr(["containers", "delete", "f5"])
        let entries = Set((try? FileManager.default.contentsOfDirectory(atPath: full)) ?? [])
        #expect(entries.allSatisfy { $0.hasPrefix("filler-") }, "left in the sandbox file system: \(entries)")
        #expect(containerd.shimProcesses().isEmpty && E2E.qemuProcesses().isEmpty)
        #expect(try containerd.ctr(["tasks", "ls", "-q"]).stdout.isEmpty)

        for i in 0..<filler { unlink(full + "/filler-\(i)") }
        let again = try containerd.ctr(["run", "--rm"] + E2E.runtime + [E2E.image, "f6", "echo", "hello"])
        #expect(again.status == 0 && again.stdout == "hello\n", "ctr said: \(again.stderr)")
        #expect(waitUntil(seconds: 20) { containerd.shimProcesses().isEmpty })
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: full)) ?? []).isEmpty)
    }

    /// containerd restarted while a pod runs: the shim keeps it; the new containerd reconnects and
    /// the task stays controllable (exec, kill, delete).
    @Test(.timeLimit(.minutes(5)))
    func containerdRestartKeepsThePodControllable() async throws {
        let containerd = try E2E.start("frestart")
        defer { containerd.stop(); rmdir(E2E.sandboxRoot) }
        let shim = try Self.startSleeper(containerd, "f4")
        try containerd.restart()
        #expect(containerd.shimProcesses() == [shim], "the shim should have survived the restart")
        #expect(waitUntil(seconds: 30) { (try? containerd.ctr(["task", "ls"]).stdout.contains("RUNNING")) == true })
        let exec = try containerd.ctr(["task", "exec", "--exec-id", "e1", "f4", "sh", "-c", "echo still-here"])
        #expect(exec.status == 0 && exec.stdout == "still-here\n", "exec: \(exec.stdout) \(exec.stderr)")
        #expect(try containerd.ctr(["task", "kill", "-s", "SIGKILL", "f4"]).status == 0)
        try Self.expectStoppedAndDelete(containerd, "f4", code: 137)
        try E2E.expectClean(containerd, ids: ["f4"])
    }
}
