import Foundation
import Testing
import Shim

@Suite(.serialized) struct ContainerdE2ETests {
    static let missingKernel = "/nonexistent/kata-swift/vmlinux"

    /// A configuration whose kernel does not exist; its path (the caller removes it).
    static func writeMissingKernelConfig(_ tag: String) throws -> String {
        let path = "/tmp/ks-e2e-\(tag)-\(getpid()).toml"
        try "[hypervisor.qemu]\nkernel = \"\(missingKernel)\"\n[runtime]\nhypervisor_name = \"auto\"\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `ctr run --rm` of busybox under kata, which must fail naming the missing kernel.
    static func ctrRunFailingOnMissingKernel(_ containerd: ContainerdHarness, id: String) throws -> CommandResult {
        try containerd.importBusybox("docker.io/library/busybox:e2e")
        let run = try containerd.ctr(["run", "--rm", "--runtime", "io.containerd.kata.v2",
                                      "docker.io/library/busybox:e2e", id, "echo", "hi"])
        #expect(run.status != 0)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains(missingKernel), "ctr said: \(run.stderr)")
        return run
    }

    @Test func ctrRunReportsMissingKernelAndLeavesNothing() async throws {
        // A configuration whose kernel does not exist: the VM cannot start, ctr shows why.
        let configPath = try Self.writeMissingKernelConfig("nokernel")
        defer { unlink(configPath) }
        let containerd = try ContainerdHarness(name: "nohv", extraEnvironment: ["KATA_CONF_FILE": configPath])
        defer { containerd.stop() }
        let run = try Self.ctrRunFailingOnMissingKernel(containerd, id: "k1")
        #expect(run.stderr.contains("kata-swift: cannot start the sandbox VM"), "ctr said: \(run.stderr)")
        #expect(!run.stderr.contains("failed to start shim"), "ctr said: \(run.stderr)")
        // Nothing is left: no shim process, socket, mount, bundle, task or container.
        #expect(waitUntil { containerd.shimProcesses().isEmpty }, "shim processes left: \(containerd.shimProcesses())")
        #expect(!FileManager.default.fileExists(atPath: containerd.shimSocket(group: "k1").path))
        #expect(containerd.mountsBelow().isEmpty, "mounts left: \(containerd.mountsBelow())")
        #expect(!FileManager.default.fileExists(atPath: containerd.bundlePath(id: "k1")))
        #expect(try containerd.ctr(["tasks", "ls", "-q"]).stdout.isEmpty)
        #expect(try containerd.ctr(["containers", "ls", "-q"]).stdout.isEmpty)
        // containerd reached our start, connected and called Create (our daemon's log lines).
        let log = containerd.containerdLog()
        #expect(log.contains("kata-swift"), "containerd log lacks the shim's lines")
    }

    @Test func ctrRunThroughScriptedTestShim() async throws {
        // The scripted test shim is a separate, never installed binary (runtime
        // io.containerd.kata-scripted.v2); containerd finds it on the same PATH as ours.
        let containerd = try ContainerdHarness(name: "scripted")
        defer { containerd.stop() }
        let scripted = URL(fileURLWithPath: shimBinaryPath()).deletingLastPathComponent()
            .appendingPathComponent("containerd-shim-kata-scripted-v2").path
        try FileManager.default.createSymbolicLink(atPath: containerd.shimDirectory + "/containerd-shim-kata-scripted-v2",
                                                   withDestinationPath: scripted)
        try containerd.importBusybox("docker.io/library/busybox:e2e")
        let runtime = "io.containerd.kata-scripted.v2"
        let run = try containerd.ctr(["run", "--rm", "--runtime", runtime,
                                      "docker.io/library/busybox:e2e", "s1", "echo", "hello", "from", "the", "shim"])
        #expect(run.status == 0, "ctr said: \(run.stderr)")
        #expect(run.stdout == "hello from the shim\n")
        let failed = try containerd.ctr(["run", "--rm", "--runtime", runtime,
                                         "docker.io/library/busybox:e2e", "s2", "exit", "3"])
        #expect(failed.status == 3, "ctr said: \(failed.stderr)")
        #expect(try containerd.ctr(["tasks", "ls", "-q"]).stdout.isEmpty)
        #expect(waitUntil { processes(running: scripted, for: containerd).isEmpty },
                "shim processes left: \(processes(running: scripted, for: containerd))")
        #expect(containerd.mountsBelow().isEmpty, "mounts left: \(containerd.mountsBelow())")
        #expect(!FileManager.default.fileExists(atPath: containerd.shimSocket(group: "s1").path))
    }

    @Test func shippedShimIgnoresTheOldTestSandboxVariable() async throws {
        // The variable that once turned the production shim into the scripted sandbox: now the
        // shipped shim still boots a VM (here: fails to, naming the missing kernel).
        let configPath = try Self.writeMissingKernelConfig("novar")
        defer { unlink(configPath) }
        let containerd = try ContainerdHarness(
            name: "novar", extraEnvironment: ["KATA_SWIFT_TEST_SANDBOX": "scripted", "KATA_CONF_FILE": configPath])
        defer { containerd.stop() }
        _ = try Self.ctrRunFailingOnMissingKernel(containerd, id: "v1")
        #expect(waitUntil { containerd.shimProcesses().isEmpty }, "shim processes left: \(containerd.shimProcesses())")
    }
}

/// Pids of processes running `binary` whose command line names this containerd's socket.
private func processes(running binary: String, for containerd: ContainerdHarness) -> [Int32] {
    let resolved = URL(fileURLWithPath: binary).resolvingSymlinksInPath().path
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"), exe == resolved,
              let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
        else { return false }
        return cmdline.contains(containerd.socket)
    }
}
