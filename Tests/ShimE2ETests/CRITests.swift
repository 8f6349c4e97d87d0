// Kubernetes' path: containerd's real CRI plugin, CNI (bridge, host-local, loopback), and our CRI
// suite (Tests/CRI/suite.py, a client of our own speaking CRI v1 over gRPC as kubelet does), once
// with handler `runc` and once with `kata`: the same cases must pass with both (docs/kubernetes.md).
// Afterwards: no shim, no QEMU, no mount, no sandbox directory, no network namespace or veth left.

import Foundation
import Shim
import Testing
import SystemSupport

@Suite(.serialized) struct CRITests {
    typealias E2E = VMRuntimeE2ETests

    /// containerd with CNI and the two images CRI needs, in its k8s.io namespace.
    static func start(_ name: String, extraTOML: String = "") throws -> ContainerdHarness {
        let containerd = try E2E.start(name, extraTOML: extraTOML)
        for (reference, arguments) in [("localhost/pause:latest", ["--bare", "/busybox", "sleep", "2147483647"]),
                                       ("localhost/busybox:latest", ["sh"])] {
            let archive = containerd.directory + "/\(reference.split(separator: "/").last ?? "image").tar"
            let made = try runCommand(["python3", repositoryRoot + "/scripts/make-image.py", archive, reference] + arguments)
            guard made.status == 0 else { throw ContainerdHarness.HarnessError(description: "make-image: \(made.stderr)") }
            let imported = try containerd.ctr(["-n", "k8s.io", "images", "import", archive])
            guard imported.status == 0 else { throw ContainerdHarness.HarnessError(description: "import: \(imported.stderr)") }
        }
        return containerd
    }

    static func netnsEntries() -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [])
    }

    static func vethCount() -> Int {
        let links = (try? runCommand(["ip", "-o", "link", "show", "type", "veth"]))?.stdout ?? ""
        return links.split(separator: "\n").count
    }

    /// With `warmSandboxes`, a warm pool of that size (docs/warm-sandboxes.md): pods after the
    /// first take warm VMs whose NIC is wired to their network at adoption; the warm shims end
    /// with containerd, which is stopped before the leftovers are checked.
    /// With `templates`, VM templates too (docs/snapshots.md): pods and warm sandboxes restore a
    /// saved VM with its NIC; the templates are removed before the leftovers are checked.
    func runSuite(handler: String, skipNetwork: String? = nil, warmSandboxes: Int = 0, templates: Bool = false) throws {
        let netnsBefore = Self.netnsEntries()
        let vethBefore = Self.vethCount()
        var factory = warmSandboxes > 0 ? "vm_cache_number = \(warmSandboxes)\n" : ""
        if templates { factory += "enable_template = true\n" }
        let containerd = try Self.start(
            "cri-\(handler)\(warmSandboxes > 0 ? "-warm" : "")\(templates ? "-template" : "")",
            extraTOML: factory.isEmpty ? "" : "[factory]\n" + factory)
        defer { containerd.stop(); rmdir(E2E.sandboxRoot) }
        let work = containerd.directory + "/suite"
        var arguments = ["/usr/bin/python3", repositoryRoot + "/Tests/CRI/suite.py", "--socket", containerd.socket,
                         "--handler", handler, "--work", work]
        if let skipNetwork { arguments += ["--skip-network", skipNetwork] }
        let t0 = Date()
        let result = try runCommand(arguments)
        print("CRI suite, handler \(handler), \(String(format: "%.1f", Date().timeIntervalSince(t0))) s:\n\(result.stdout)\(result.stderr)")
        #expect(result.status == 0, "the CRI suite failed with handler \(handler)")
        #expect(result.stdout.contains("RESULTS "), "the suite did not finish")
        if warmSandboxes > 0 {
            let claims = containerd.containerdLog().components(separatedBy: "claimed warm sandbox").count - 1
            print("CRI suite, handler \(handler): \(claims) pods took a warm sandbox")
            #expect(claims >= 3, "too few pods took a warm sandbox (\(claims))")
            let pidText = (try? String(contentsOfFile: containerd.directory + "/containerd.pid", encoding: .utf8)) ?? ""
            if let pid = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGTERM)
                #expect(waitUntil(seconds: 30) { kill(pid, 0) != 0 }, "containerd did not stop")
            }
        }

        if templates {
            let restores = containerd.containerdLog().components(separatedBy: "VM restored from template").count - 1
            print("CRI suite, handler \(handler): \(restores) VMs restored from a template")
            #expect(restores >= 5, "too few VMs restored from a template (\(restores))")
            // Templates outlive pods by design (a maker still at work ends with its shim).
            #expect(waitUntil(seconds: 120) { containerd.shimProcesses().isEmpty }, "shims left: \(containerd.shimProcesses())")
            try? FileManager.default.removeItem(atPath: E2E.sandboxRoot + "/.template")
        }
        #expect(waitUntil(seconds: 30) { containerd.shimProcesses().isEmpty }, "shims left: \(containerd.shimProcesses())")
        #expect(waitUntil(seconds: 10) { E2E.qemuProcesses().isEmpty }, "QEMU left")
        let sandboxes = (try? FileManager.default.contentsOfDirectory(atPath: E2E.sandboxRoot)) ?? []
        #expect(sandboxes.isEmpty, "sandbox directories left: \(sandboxes)")
        let runMounts = ((try? readWholeTextFile("/proc/self/mounts")) ?? "").split(separator: "\n")
            .filter { $0.contains(E2E.sandboxRoot) }
        #expect(runMounts.isEmpty, "sandbox mounts left: \(runMounts)")
        #expect(waitUntil(seconds: 10) { Self.netnsEntries().subtracting(netnsBefore).isEmpty },
                "network namespaces left: \(Self.netnsEntries().subtracting(netnsBefore))")
        #expect(Self.vethCount() <= vethBefore, "veth pairs left")
    }

    @Test(.timeLimit(.minutes(10)))
    func criSuiteWithRunc() throws {
        try runSuite(handler: "runc")
    }

    @Test(.timeLimit(.minutes(20)))
    func criSuiteWithKata() throws {
        try runSuite(handler: "kata")
    }

    @Test(.timeLimit(.minutes(20)))
    func criSuiteWithKataFromWarmSandboxes() throws {
        try runSuite(handler: "kata", warmSandboxes: 1)
    }

    /// Pods with CNI networking restored from a VM template (each with its own NIC): our VMM only.
    /// (Warm members restoring theirs: TemplateE2ETests.)
    @Test(.onOurVMM("CRI with templates", elsewhere: "`scripts/nested-tests.sh all` has it"), .timeLimit(.minutes(25)))
    func criSuiteWithKataFromTemplates() throws {
        try runSuite(handler: "kata", templates: true)
    }
}
