// VMSandbox end to end below containerd: a busybox container in the real guest, through the
// agent's container RPCs and the virtio-fs share. Needs the agent's container engine (branch
// agentc) and the virtio-fs share (branch fs) in the guest images; without them every test here
// fails at createContainer with the agent's or the VM's error text.

import ContainerdAPI
import Foundation
import OCI
import Shim
import Testing
@testable import Runtime

@Suite(.serialized) struct VMSandboxContainerTests {
    /// A sandbox with its configuration file; `finish` shuts it down and checks nothing is left.
    struct Harness {
        let sandbox: VMSandbox
        let config: RuntimeConfig
        let configPath: String
        let id: String

        init(_ id: String) throws {
            self.id = id
            config = try VMFixture.config()
            configPath = "/tmp/ks-runtime-\(id)-\(getpid()).toml"
            try VMFixture.writeConfigFile(config, to: configPath)
            sandbox = VMSandbox(sandboxID: id, environment: [:], logger: VMFixture.logger)
        }

        func create(_ bundle: BusyboxBundle, containerID: String, stdio: ProcessStdio) async throws {
            let pid = try await sandbox.createContainer(bundle.containerConfig(id: containerID, stdio: stdio, configPath: configPath))
            #expect(pid == UInt32(getpid()), "the host pid of every task is the shim's")
        }

        func finish(_ bundle: BusyboxBundle) async {
            await sandbox.shutdown()
            #expect(await VMFixture.eventually { VMFixture.qemuChildren().isEmpty }, "QEMU left: \(VMFixture.qemuChildren())")
            #expect(VMFixture.mounts(below: config.sandboxDirectory).isEmpty, "mounts left")
            #expect(!FileManager.default.fileExists(atPath: config.sandboxDirectory + "/" + id), "sandbox directory left")
            // The container's rootfs on the host is untouched by the teardown.
            #expect(FileManager.default.fileExists(atPath: bundle.rootfs + "/bin/busybox"), "rootfs lost its files")
            rmdir(config.sandboxDirectory)
            unlink(configPath)
            bundle.remove()
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func stdoutStderrAndExitCode() async throws {
        let harness = try Harness("ctr-echo")
        let bundle = try BusyboxBundle(name: "echo", args: ["sh", "-c", "echo hello; echo oops >&2; cat /etc/hostname; exit 3"])
        let stdout = CollectingWriter(), stderr = CollectingWriter()
        do {
            try await harness.create(bundle, containerID: "c1", stdio: ProcessStdio(stdout: stdout, stderr: stderr))
            _ = try await harness.sandbox.startProcess(containerID: "c1", execID: nil)
            let status = try await harness.sandbox.waitProcess(containerID: "c1", execID: nil)
            #expect(status == 3)
            let (out, err) = (await stdout.text, await stderr.text)
            #expect(out.hasPrefix("hello\n"), "stdout: \(out)")
            #expect(out.hasSuffix("\n") && out.count > "hello\n".count, "the bind-mounted /etc/hostname was not copied: \(out)")
            #expect(err == "oops\n")
            let closed = (await stdout.closed, await stderr.closed)
            #expect(closed == (true, true), "output streams closed before the exit is reported")
            try await harness.sandbox.removeContainer(containerID: "c1")
        } catch {
            Issue.record("\(error)")
        }
        await harness.finish(bundle)
    }

    @Test(.timeLimit(.minutes(5)))
    func stdinReachesTheProcess() async throws {
        let harness = try Harness("ctr-stdin")
        let bundle = try BusyboxBundle(name: "stdin", args: ["cat"])
        let stdin = FeedingReader(), stdout = CollectingWriter()
        do {
            try await harness.create(bundle, containerID: "c1", stdio: ProcessStdio(stdin: stdin, stdout: stdout))
            _ = try await harness.sandbox.startProcess(containerID: "c1", execID: nil)
            await stdin.send("line one\n")
            #expect(await stdout.waitFor("line one\n"))
            await stdin.send("line two\n")
            try await harness.sandbox.closeStdin(containerID: "c1", execID: nil)
            #expect(try await harness.sandbox.waitProcess(containerID: "c1", execID: nil) == 0)
            #expect(await stdout.text == "line one\nline two\n")
            try await harness.sandbox.removeContainer(containerID: "c1")
        } catch {
            Issue.record("\(error)")
        }
        await harness.finish(bundle)
    }

    @Test(.timeLimit(.minutes(6)))
    func execSignalsPauseStatsAndPids() async throws {
        let harness = try Harness("ctr-exec")
        let bundle = try BusyboxBundle(name: "exec", args: ["sleep", "1000"])
        let sandbox = harness.sandbox
        do {
            try await harness.create(bundle, containerID: "c1", stdio: ProcessStdio())
            _ = try await sandbox.startProcess(containerID: "c1", execID: nil)

            // exec without a terminal
            let out = CollectingWriter()
            try await sandbox.addProcess(containerID: "c1", execID: "e1", spec: OCIProcess(args: ["sh", "-c", "echo from exec; id -u"]),
                                         stdio: ProcessStdio(stdout: out))
            _ = try await sandbox.startProcess(containerID: "c1", execID: "e1")
            #expect(try await sandbox.waitProcess(containerID: "c1", execID: "e1") == 0)
            #expect(await out.text == "from exec\n0\n")
            try await sandbox.removeProcess(containerID: "c1", execID: "e1")

            // exec with a terminal: output on stdout, window size applied
            let tty = CollectingWriter()
            try await sandbox.addProcess(containerID: "c1", execID: "t1",
                                         spec: OCIProcess(terminal: true, args: ["sh", "-c", "sleep 1; stty size"]),
                                         stdio: ProcessStdio(stdout: tty, terminal: true))
            _ = try await sandbox.startProcess(containerID: "c1", execID: "t1")
            try await sandbox.resizePty(containerID: "c1", execID: "t1", width: 91, height: 37)
            #expect(try await sandbox.waitProcess(containerID: "c1", execID: "t1") == 0)
            let ttyText = await tty.text
            #expect(ttyText.contains("37 91"), "tty said: \(ttyText)")

            // pids and stats
            let pids = try await sandbox.pids(containerID: "c1")
            #expect(!pids.isEmpty)
            let encoded = try await sandbox.stats(containerID: "c1")
            #expect(encoded.typeURL == "io.containerd.cgroups.v1.Metrics")
            let metrics = try Io_Containerd_Cgroups_V1_Metrics(serializedBytes: encoded.value)
            #expect(metrics.pids.current >= 1)
            #expect(metrics.memory.usage.usage > 0)

            // pause / resume: a paused container's exec does not run until resumed
            try await sandbox.pause(containerID: "c1")
            try await sandbox.resume(containerID: "c1")

            // SIGTERM to an exec (not the pid-namespace init): 128+15
            try await sandbox.addProcess(containerID: "c1", execID: "s1", spec: OCIProcess(args: ["sleep", "1000"]),
                                         stdio: ProcessStdio())
            _ = try await sandbox.startProcess(containerID: "c1", execID: "s1")
            try await sandbox.signalProcess(containerID: "c1", execID: "s1", signal: UInt32(SIGTERM), all: false)
            #expect(try await sandbox.waitProcess(containerID: "c1", execID: "s1") == 128 + UInt32(SIGTERM))

            // SIGKILL to the init: 128+9
            try await sandbox.signalProcess(containerID: "c1", execID: nil, signal: UInt32(SIGKILL), all: true)
            #expect(try await sandbox.waitProcess(containerID: "c1", execID: nil) == 128 + UInt32(SIGKILL))
            try await sandbox.removeContainer(containerID: "c1")
            await #expect(throws: TaskError.self) { _ = try await sandbox.pids(containerID: "c1") }
        } catch {
            Issue.record("\(error)")
        }
        await harness.finish(bundle)
    }

    @Test(.timeLimit(.minutes(3)))
    func vmDeathEndsEveryProcessWith255() async throws {
        let harness = try Harness("ctr-vmdeath")
        let bundle = try BusyboxBundle(name: "vmdeath", args: ["sleep", "1000"])
        let out = CollectingWriter()
        do {
            try await harness.create(bundle, containerID: "c1", stdio: ProcessStdio(stdout: out))
            _ = try await harness.sandbox.startProcess(containerID: "c1", execID: nil)
            let qemu = VMFixture.qemuChildren()
            #expect(qemu.count == 1)
            for pid in qemu { kill(pid, SIGKILL) }
            #expect(try await harness.sandbox.waitProcess(containerID: "c1", execID: nil) == 255)
            let closed = await out.closed
            #expect(closed)
            let error = await #expect(throws: TaskError.self) { _ = try await harness.sandbox.pids(containerID: "c1") }
            #expect(error?.message.contains("VM is gone") == true, "\(String(describing: error))")
            try? await harness.sandbox.removeContainer(containerID: "c1")
        } catch {
            Issue.record("\(error)")
        }
        await harness.finish(bundle)
    }
}
