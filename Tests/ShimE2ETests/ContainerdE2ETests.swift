import Foundation
import Testing
import Shim

@Suite(.serialized) struct ContainerdE2ETests {
    @Test func ctrRunReportsMissingKernelAndLeavesNothing() async throws {
        // A configuration whose kernel does not exist: the VM cannot start, ctr shows why.
        let configPath = "/tmp/ks-e2e-nokernel-\(getpid()).toml"
        try "[hypervisor]\nkernel = \"/nonexistent/kata-swift/vmlinux\"\n".write(toFile: configPath, atomically: true, encoding: .utf8)
        defer { unlink(configPath) }
        let containerd = try ContainerdHarness(name: "nohv", extraEnvironment: ["KATA_CONF_FILE": configPath])
        defer { containerd.stop() }
        try containerd.importBusybox("docker.io/library/busybox:e2e")
        let run = try containerd.ctr(["run", "--rm", "--runtime", "io.containerd.kata.v2",
                                      "docker.io/library/busybox:e2e", "k1", "echo", "hi"])
        #expect(run.status != 0)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("kata-swift: cannot start the sandbox VM"), "ctr said: \(run.stderr)")
        #expect(run.stderr.contains("/nonexistent/kata-swift/vmlinux"), "ctr said: \(run.stderr)")
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

    @Test func ctrRunThroughScriptedTestBackend() async throws {
        let containerd = try ContainerdHarness(name: "scripted", extraEnvironment: ["KATA_SWIFT_TEST_SANDBOX": "scripted"])
        defer { containerd.stop() }
        try containerd.importBusybox("docker.io/library/busybox:e2e")
        let run = try containerd.ctr(["run", "--rm", "--runtime", "io.containerd.kata.v2",
                                      "docker.io/library/busybox:e2e", "s1", "echo", "hello", "from", "the", "shim"])
        #expect(run.status == 0, "ctr said: \(run.stderr)")
        #expect(run.stdout == "hello from the shim\n")
        let failed = try containerd.ctr(["run", "--rm", "--runtime", "io.containerd.kata.v2",
                                         "docker.io/library/busybox:e2e", "s2", "exit", "3"])
        #expect(failed.status == 3, "ctr said: \(failed.stderr)")
        #expect(try containerd.ctr(["tasks", "ls", "-q"]).stdout.isEmpty)
        #expect(waitUntil { containerd.shimProcesses().isEmpty }, "shim processes left: \(containerd.shimProcesses())")
        #expect(containerd.mountsBelow().isEmpty, "mounts left: \(containerd.mountsBelow())")
        #expect(!FileManager.default.fileExists(atPath: containerd.shimSocket(group: "s1").path))
    }
}
