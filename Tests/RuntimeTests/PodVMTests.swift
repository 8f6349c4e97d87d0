// The sandbox VM against a real guest (our kernel + kata-agent, on the hypervisor `auto` picks:
// QEMU/TCG here): boot, agent health with retries, teardown that leaves nothing; an agent that
// never answers gives an error with the guest's console; a bad configuration fails before boot.

import Foundation
import Hypervisor
import Shim
import Testing
@testable import Runtime

@Suite(.serialized) struct PodVMTests {
    @Test(.timeLimit(.minutes(5)))
    func bootHealthCheckAndShutdownLeaveNothing() async throws {
        signal(SIGPIPE, SIG_IGN)
        let config = try VMFixture.config(debugConsole: true)
        try await VMFixture.warmUp()
        let fdsBefore = VMFixture.openDescriptors()
        let t0 = ContinuousClock.now
        let vm = try await PodVM.boot(sandboxID: "vmtest1", config: config, logger: VMFixture.logger)
        print("BENCH runtime: PodVM.boot -> healthy agent: \(ContinuousClock.now - t0) (\(vm.hypervisor.kind))")
        let root = config.sandboxDirectory + "/vmtest1"
        #expect(vm.paths.root == root)
        #expect(FileManager.default.fileExists(atPath: root + "/shared/containers"))
        // The debug console's hybrid socket is where SandboxPaths puts it.
        var st = stat()
        #expect(lstat(root + "/hvsock", &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK, "no hvsock socket")
        #expect(VMFixture.qemuChildren().count == 1)
        let health = try await vm.health.check(.init())
        #expect(health.status == .serving)
        let details = try await vm.agent.getGuestDetails(.init())
        #expect(details.kernelRelease.hasSuffix("-kata-swift"))

        await vm.shutdown(destroySandbox: true)
        #expect(!vm.isAlive)
        #expect(await VMFixture.eventually { VMFixture.qemuChildren().isEmpty }, "QEMU left: \(VMFixture.qemuChildren())")
        #expect(!FileManager.default.fileExists(atPath: root), "sandbox directory left")
        #expect(VMFixture.mounts(below: config.sandboxDirectory).isEmpty)
        #expect(VMFixture.openDescriptors() <= fdsBefore, "descriptors leaked")
        rmdir(config.sandboxDirectory)
    }

    @Test(.timeLimit(.minutes(5)))
    func agentThatNeverAnswersFailsWithConsoleTail() async throws {
        // The agent listens elsewhere, so port 1024 never answers: the deadline applies and the
        // error carries the guest console.
        let config = try VMFixture.config(dialTimeout: 12, kernelParams: ["agent.listen=vsock://-1:2000"])
        let t0 = ContinuousClock.now
        do {
            let vm = try await PodVM.boot(sandboxID: "vmtest2", config: config, logger: VMFixture.logger)
            await vm.shutdown(destroySandbox: false)
            Issue.record("boot succeeded although the agent listens on port 2000")
        } catch {
            let elapsed = ContinuousClock.now - t0
            guard case .agentUnreachable(let reason, let tail) = error else {
                Issue.record("unexpected error: \(error)")
                return
            }
            #expect(reason.contains("1024"))
            #expect(tail.contains("Linux version") || tail.contains("kata-agent"), "console tail: \(tail)")
            #expect(error.description.contains("guest console"))
            #expect(error.taskError.code == .unavailable)
            #expect(elapsed >= .seconds(11) && elapsed < .seconds(60), "deadline not honoured: \(elapsed)")
        }
        #expect(await VMFixture.eventually { VMFixture.qemuChildren().isEmpty })
        #expect(!FileManager.default.fileExists(atPath: config.sandboxDirectory + "/vmtest2"))
        rmdir(config.sandboxDirectory)
    }

    @Test func missingKernelFailsBeforeBootAndLeavesNothing() async throws {
        var config = try VMFixture.config()
        config.kernel = "/nonexistent/vmlinux"
        await #expect(throws: RuntimeError.self) {
            _ = try await PodVM.boot(sandboxID: "vmtest3", config: config, logger: VMFixture.logger)
        }
        do {
            _ = try await PodVM.boot(sandboxID: "vmtest3", config: config, logger: VMFixture.logger)
        } catch {
            #expect(error.description.contains("/nonexistent/vmlinux"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: config.sandboxDirectory + "/vmtest3"))
        rmdir(config.sandboxDirectory)
    }

    @Test func badConfigurationFileFailsCreateWithFileAndKey() async throws {
        let file = "/tmp/ks-runtime-badconfig-\(getpid()).toml"
        try "[hypervisor.qemu]\ndefault_vcpus = \"two\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let bundle = try BusyboxBundle(name: "badconfig", args: ["true"])
        defer { bundle.remove() }
        let sandbox = VMSandbox(sandboxID: "badconfig", environment: [:], logger: VMFixture.logger)
        let error = await #expect(throws: TaskError.self) {
            _ = try await sandbox.createContainer(bundle.containerConfig(id: "c1", stdio: ProcessStdio(), configPath: file))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(file + ":2") == true, "\(String(describing: error))")
        #expect(error?.message.contains("hypervisor.qemu.default_vcpus") == true)
        await sandbox.shutdown()
    }
}
