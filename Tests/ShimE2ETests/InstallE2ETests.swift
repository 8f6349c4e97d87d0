// A Kata user's path: `make install` (release binaries, guest images, the default configuration),
// a containerd that knows only `runtime_type = "io.containerd.kata.v2"` and finds the installed
// shim on its PATH, `ctr run`, then `make uninstall` leaving nothing. Also Kata's own QEMU
// configuration (Tests/Kata) running containers as written, and Kata's pod annotations through
// `ctr run --annotation`: an allowed one changes the VM, one that is not enabled fails Create.
// Installs under a scratch DESTDIR, never into the host's /usr or /etc.

import Foundation
import Testing
@testable import Runtime

@Suite(.serialized) struct InstallE2ETests {
    static let image = "docker.io/library/busybox:e2e"
    static let prefix = "/usr/local"

    /// The guest kernel and agent initramfs the e2e suites boot (KATA_GUEST_KERNEL,
    /// KATA_AGENT_INITRD, else build/guest), or an error saying how to build them.
    static func guestImages() throws -> (kernel: String, initrd: String) {
        let environment = ProcessInfo.processInfo.environment
        let kernel = environment["KATA_GUEST_KERNEL"].flatMap { $0.isEmpty ? nil : $0 } ?? repositoryRoot + "/build/guest/vmlinux"
        let initrd = environment["KATA_AGENT_INITRD"].flatMap { $0.isEmpty ? nil : $0 }
            ?? repositoryRoot + "/build/guest/initramfs-agent.cpio"
        guard access(kernel, R_OK) == 0, access(initrd, R_OK) == 0 else {
            throw ContainerdHarness.HarnessError(description: "guest images missing (\(kernel), \(initrd)): run `make kernel agent-initramfs`")
        }
        return (kernel, initrd)
    }

    /// Every regular file and symlink below `directory`.
    static func files(below directory: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        return walker.compactMap { $0 as? String }.filter { path in
            var st = stat()
            return lstat(directory + "/" + path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFDIR
        }.sorted()
    }

    static func make(_ target: String, destdir: String) throws -> CommandResult {
        try runCommand(["make", "-C", repositoryRoot, "--no-print-directory", target, "DESTDIR=\(destdir)", "PREFIX=\(prefix)"])
    }

    @Test func makeInstallThenCtrRunThenMakeUninstallLeavesNothing() throws {
        let scratch = "/tmp/ks-install-\(getpid())"
        let destdir = scratch + "/root"
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let sandboxDirectory = "/run/kata-swift-install-\(getpid())"
        defer {
            try? FileManager.default.removeItem(atPath: scratch)
            rmdir(sandboxDirectory)
        }

        let installed = try Self.make("install", destdir: destdir)
        try #require(installed.status == 0, "make install: \(installed.stdout)\(installed.stderr)")
        let expected = [
            "etc/kata-swift/configuration.toml", "usr/local/bin/containerd-shim-kata-v2", "usr/local/bin/kata-ctl",
            "usr/local/share/kata-swift/agent.img", "usr/local/share/kata-swift/initramfs-agent.cpio",
            "usr/local/share/kata-swift/vmlinux",
        ]
        #expect(Self.files(below: destdir) == expected)
        // The installed default configuration points into $(PREFIX)/share/kata-swift.
        let configPath = destdir + "/etc/kata-swift/configuration.toml"
        let installedConfig = try RuntimeConfig.read(path: configPath)
        #expect(installedConfig.kernel == "/usr/local/share/kata-swift/vmlinux")
        #expect(installedConfig.image == "/usr/local/share/kata-swift/agent.img")

        // The same file with DESTDIR in front of its paths (the environment override, as the
        // guest images are not in the host's /usr/local), and a sandbox directory of the test's.
        let share = destdir + Self.prefix + "/share/kata-swift"
        let testConfig = scratch + "/configuration.toml"
        try String(contentsOfFile: configPath, encoding: .utf8)
            .replacingOccurrences(of: Self.prefix + "/share/kata-swift", with: share)
            .replacingOccurrences(of: "sandbox_dir = \"/run/kata-swift\"", with: "sandbox_dir = \"\(sandboxDirectory)\"")
            .replacingOccurrences(of: "dial_timeout = 60", with: "dial_timeout = 120")
            .replacingOccurrences(of: "[runtime]", with: "[runtime]\nhypervisor_name = \"auto\"")
            .write(toFile: testConfig, atomically: true, encoding: .utf8)
        do {
            let bin = destdir + Self.prefix + "/bin"
            let containerd = try ContainerdHarness(name: "install", extraEnvironment: ["KATA_CONF_FILE": testConfig], installedBin: bin)
            defer { containerd.stop() }
            try containerd.importBusybox(Self.image)
            let run = try containerd.ctr(["run", "--rm", "--runtime", "io.containerd.kata.v2", Self.image, "i1", "uname", "-r"])
            #expect(run.status == 0, "ctr said: \(run.stderr)\n\(containerd.containerdLog().suffix(3000))")
            #expect(run.stdout.contains("kata-swift"), "the guest kernel did not answer: \(run.stdout)")
            #expect(waitUntil(seconds: 20) { containerd.shimProcesses().isEmpty })
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: sandboxDirectory)) ?? []
            #expect(leftovers.isEmpty, "sandbox directories left: \(leftovers)")
            // The installed shim is the only one containerd can have found: no other on its PATH.
            let others = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
                .map { String($0) + "/containerd-shim-kata-v2" }.filter { FileManager.default.isExecutableFile(atPath: $0) }
            #expect(others.isEmpty, "another shim on containerd's PATH: \(others)")
        }

        // An edited configuration is never overwritten: the new default goes beside it.
        try (try String(contentsOfFile: configPath, encoding: .utf8) + "\n# edited\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        let again = try Self.make("install", destdir: destdir)
        try #require(again.status == 0, "make install: \(again.stderr)")
        #expect(FileManager.default.fileExists(atPath: configPath + ".new"))
        #expect(try String(contentsOfFile: configPath, encoding: .utf8).hasSuffix("# edited\n"))

        let removed = try Self.make("uninstall", destdir: destdir)
        #expect(removed.status == 0, "make uninstall: \(removed.stderr)")
        // Only the edited configuration stays, and uninstall says so.
        #expect(Self.files(below: destdir) == ["etc/kata-swift/configuration.toml"])
        #expect(removed.stderr.contains("kept \(configPath)"))
        try FileManager.default.removeItem(atPath: configPath)
        let clean = try Self.make("install", destdir: destdir)
        try #require(clean.status == 0)
        let uninstalled = try Self.make("uninstall", destdir: destdir)
        #expect(uninstalled.status == 0)
        #expect(Self.files(below: destdir).isEmpty, "left behind: \(Self.files(below: destdir))")
        #expect(!FileManager.default.fileExists(atPath: destdir + "/etc/kata-swift"))
        #expect(!FileManager.default.fileExists(atPath: share))
    }

    @Test func kataQEMUConfigurationRunsContainersAndPodAnnotations() throws {
        let (kernel, initrd) = try Self.guestImages()
        let configPath = "/tmp/ks-e2e-kata-qemu-\(getpid()).toml"
        try String(contentsOfFile: repositoryRoot + "/Tests/Kata/configuration-qemu.toml.in", encoding: .utf8)
            .replacingOccurrences(of: "@KERNEL@", with: kernel).replacingOccurrences(of: "@INITRD@", with: initrd)
            .replacingOccurrences(of: "@QEMU@", with: "/usr/bin/qemu-system-x86_64")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        defer { unlink(configPath) }
        let containerd = try ContainerdHarness(name: "kataconf", extraEnvironment: ["KATA_CONF_FILE": configPath])
        defer { containerd.stop() }
        try containerd.importBusybox(Self.image)
        let runtime = ["--runtime", "io.containerd.kata.v2"]
        let cpus = ["sh", "-c", "grep -c ^processor /proc/cpuinfo"]

        // As written: 1 vCPU, QEMU; the keys we do not implement are named in the shim's log.
        let plain = try containerd.ctr(["run", "--rm"] + runtime + [Self.image, "k1"] + cpus)
        #expect(plain.status == 0, "ctr said: \(plain.stderr)")
        #expect(plain.stdout == "1\n")
        let log = containerd.containerdLog()
        #expect(log.contains("hypervisor.qemu.machine_type: kata-swift starts QEMU as -M microvm"), "no warning in the shim's log")

        // Enabled by the file (enable_annotations has "default_vcpus"): the guest sees 2 CPUs.
        let wanted = min(2, ProcessInfo.processInfo.activeProcessorCount)
        let annotated = try containerd.ctr(
            ["run", "--rm"] + runtime
                + ["--annotation", "io.katacontainers.config.hypervisor.default_vcpus=2", Self.image, "k2"] + cpus)
        #expect(annotated.status == 0, "ctr said: \(annotated.stderr)")
        #expect(annotated.stdout == "\(wanted)\n")

        // Not enabled: Create fails, naming the annotation; nothing is left.
        let refused = try containerd.ctr(
            ["run", "--rm"] + runtime
                + ["--annotation", "io.katacontainers.config.hypervisor.default_maxvcpus=4", Self.image, "k3", "true"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("annotation io.katacontainers.config.hypervisor.default_maxvcpus: not enabled"),
                "ctr said: \(refused.stderr)")
        #expect(waitUntil(seconds: 20) { containerd.shimProcesses().isEmpty }, "shims left: \(containerd.shimProcesses())")
        #expect(try containerd.ctr(["tasks", "ls", "-q"]).stdout.isEmpty)

        // kata-ctl env reads the same file: its values, its warnings, no problem on this host.
        let kataCtl = URL(fileURLWithPath: shimBinaryPath()).deletingLastPathComponent().appendingPathComponent("kata-ctl").path
        let env = try runCommand([kataCtl, "env", "--config", configPath, "--json"])
        #expect(env.status == 0, "kata-ctl env: \(env.stdout)\(env.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(env.stdout.utf8)) as? [String: Any])
        let hypervisor = report["hypervisor"] as? [String: Any]
        #expect(hypervisor?["memoryMiB"] as? Int == 2048)
        #expect(hypervisor?["path"] as? String == "/usr/bin/qemu-system-x86_64")
        #expect((report["kernel"] as? [String: Any])?["path"] as? String == kernel)
        #expect(((report["runtime"] as? [String: Any])?["warnings"] as? [String])?.contains { $0.contains("machine_type") } == true)

        // kata-ctl list: a running sandbox, its VM and state; gone once the task is.
        let detached = try containerd.ctr(["run", "-d"] + runtime + [Self.image, "k4", "sleep", "600"])
        try #require(detached.status == 0, "ctr said: \(detached.stderr)")
        let listed = try runCommand([kataCtl, "list", "--config", configPath, "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        let k4 = entries.first { $0["id"] as? String == "k4" }
        #expect(k4?["state"] as? String == "running", "kata-ctl list: \(listed.stdout)")
        #expect(k4?["vcpus"] as? Int == 1)
        #expect(k4?["memoryMiB"] as? Int == 2048)
        #expect((k4?["backend"] as? String)?.hasPrefix("qemu") == true, "kata-ctl list: \(listed.stdout)")
        let text = try runCommand([kataCtl, "list", "--config", configPath])
        #expect(text.stdout.contains("k4\trunning\t"), "kata-ctl list: \(text.stdout)")
        _ = try containerd.ctr(["tasks", "kill", "-s", "SIGKILL", "k4"])
        #expect(waitUntil(seconds: 30) { (try? containerd.ctr(["tasks", "delete", "k4"]))?.status == 0 })
        _ = try containerd.ctr(["containers", "delete", "k4"])
        #expect(waitUntil(seconds: 20) { containerd.shimProcesses().isEmpty }, "shims left: \(containerd.shimProcesses())")
        let after = try runCommand([kataCtl, "list", "--config", configPath, "--json"])
        #expect(!after.stdout.contains("\"k4\""), "kata-ctl list: \(after.stdout)")
    }
}
