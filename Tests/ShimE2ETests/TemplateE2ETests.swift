// VM templates through containerd (docs/snapshots.md, "Templates"): with `[factory]
// enable_template`, the first pod boots its VM and its shim then saves a template at agent ready;
// later pods restore it instead of booting, take fresh entropy and the host's time, and run.
// Our VMM only: runs inside the nested KVM host (KATA_E2E_BACKEND=kvm, `make test`'s nested run).

import Foundation
import Testing
import SystemSupport

@Suite(.serialized) struct TemplateE2ETests {
    static var templates: String { VMRuntimeE2ETests.sandboxRoot + "/.template" }

    static func savedTemplates() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: templates)) ?? []).filter { $0.hasSuffix(".vm") }
    }

    /// containerd with `[factory]` set as given; `stop` removes the templates as well.
    static func start(_ name: String, factory: String) throws -> ContainerdHarness {
        try VMRuntimeE2ETests.start(name, extraTOML: "[factory]\n" + factory)
    }

    static func stop(_ containerd: ContainerdHarness) {
        containerd.stop()
        _ = try? FileManager.default.removeItem(atPath: Self.templates)
        rmdir(VMRuntimeE2ETests.sandboxRoot)
    }

    @Test(.onOurVMM("templates", elsewhere: "the nested KVM host's ci run has it"), .timeLimit(.minutes(15)))
    func podsRestoreATemplateSavedByTheFirstPodsShim() async throws {
        let containerd = try Self.start("template", factory: "enable_template = true")
        defer { Self.stop(containerd) }
        let runtime = VMRuntimeE2ETests.runtime
        let image = VMRuntimeE2ETests.image

        // The first pod boots; once it is up its shim saves the template, and ends when it is saved.
        var started = Date()
        let cold = try containerd.ctr(["run", "--rm"] + runtime + [image, "t1", "echo", "cold"])
        let coldSeconds = Date().timeIntervalSince(started)
        #expect(cold.status == 0 && cold.stdout == "cold\n", "ctr said: \(cold.stdout) \(cold.stderr)")
        #expect(waitUntil(seconds: 240) { Self.savedTemplates().count == 1 },
                "no template was saved: \(containerd.containerdLog().split(separator: "\n").filter { $0.contains("template") }.suffix(10))")
        #expect(waitUntil(seconds: 60) { containerd.shimProcesses().isEmpty }, "the first pod's shim lingers: \(containerd.shimProcesses())")

        // Later pods restore it: each takes the host's time, and its own entropy.
        var samples: [String] = []
        var bootIDs: [String] = []
        var templatedSeconds: [Double] = []
        for id in ["t2", "t3"] {
            started = Date()
            let run = try containerd.ctr(["run", "--rm"] + runtime + [image, id, "sh", "-c", "date +%s; od -An -tx1 -N16 /dev/urandom; cat /proc/sys/kernel/random/boot_id"])
            templatedSeconds.append(Date().timeIntervalSince(started))
            #expect(run.status == 0, "ctr said: \(run.stdout) \(run.stderr.suffix(800))")
            let lines = run.stdout.split(separator: "\n")
            let guestTime = lines.first.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) } ?? 0
            #expect(abs(guestTime - Date().timeIntervalSince1970) < 30, "the guest's clock says \(guestTime)")
            samples.append(lines.dropFirst().dropLast().joined())
            bootIDs.append(lines.last.map(String.init) ?? "")
        }
        // The kernel makes boot_id at its first read, from the reseeded RNG: each clone has its own.
        #expect(bootIDs.count == 2 && bootIDs[0] != bootIDs[1] && bootIDs.allSatisfy { $0.count == 36 }, "boot_id: \(bootIDs)")
        #expect(samples.count == 2 && samples[0] != samples[1], "two clones read the same random bytes: \(samples)")
        let restores = containerd.containerdLog().components(separatedBy: "VM restored from a template").count - 1
        #expect(restores == 2, "pods restored from the template: \(restores)")
        print("BENCH templates: ctr run --rm: boot \(String(format: "%.2f", coldSeconds)) s, from the template \(templatedSeconds.map { String(format: "%.2f", $0) }.joined(separator: ", ")) s")

        // A template that no longer matches its key's promise (damaged) is discarded; the pod boots.
        let name = try #require(Self.savedTemplates().first)
        let fd = open(Self.templates + "/" + name, O_WRONLY)
        #expect(fd >= 0 && pwrite(fd, "BROKEN!!", 8, 0) == 8)
        close(fd)
        let fallback = try containerd.ctr(["run", "--rm"] + runtime + [image, "t4", "echo", "booted"])
        #expect(fallback.status == 0 && fallback.stdout == "booted\n", "ctr said: \(fallback.stdout) \(fallback.stderr)")
        #expect(containerd.containerdLog().contains("did not restore"), "the damaged template was not reported")
        #expect(waitUntil(seconds: 240) { Self.savedTemplates().count == 1 }, "no new template after the damaged one went")
        #expect(waitUntil(seconds: 60) { containerd.shimProcesses().isEmpty }, "a shim lingers: \(containerd.shimProcesses())")
        // Templates outlive pods by design; nothing else may be left.
        let kept = (try? FileManager.default.contentsOfDirectory(atPath: Self.templates)) ?? []
        let base = String(name.dropLast(3))
        #expect(kept.sorted() == [name, base + ".lock", base + ".inputs"].sorted(), "in \(Self.templates): \(kept)")
        try FileManager.default.removeItem(atPath: Self.templates)
        try VMRuntimeE2ETests.expectClean(containerd, ids: ["t1", "t2", "t3", "t4"])
    }

    /// Warm sandboxes boot with a NIC (docs/warm-sandboxes.md), so theirs is a template of its
    /// own: the first member boots and saves it, the members after it restore it (NIC and all)
    /// and pods claim them as any.
    @Test(.onOurVMM("templates with warm sandboxes", elsewhere: "the nested KVM host's ci run has it"), .timeLimit(.minutes(15)))
    func warmSandboxesWithTheirNICRestoreATemplate() async throws {
        let containerd = try Self.start("template-warm", factory: "enable_template = true\nvm_cache_number = 1")
        defer { Self.stop(containerd) }
        let runtime = VMRuntimeE2ETests.runtime
        let image = VMRuntimeE2ETests.image
        typealias Pool = WarmPoolE2ETests

        // The pool is empty: the pod boots (and saves the template without a NIC); the first
        // member boots with its NIC and saves the template with one.
        let cold = try containerd.ctr(["run", "--rm"] + runtime + [image, "tw1", "echo", "cold"])
        #expect(cold.status == 0 && cold.stdout == "cold\n", "ctr said: \(cold.stdout) \(cold.stderr)")
        #expect(waitUntil(seconds: 240) { Self.savedTemplates().count == 2 && Pool.members().ready.count == 1 },
                "templates \(Self.savedTemplates()), members \(Pool.members()): \(containerd.containerdLog().split(separator: "\n").filter { $0.contains("template") }.suffix(10))")
        let booted = try #require(Pool.members().ready.first)
        let bootedLog = Pool.memberLog(booted)
        #expect(!bootedLog.contains("VM restored from template"), "the first member had no template to restore")
        // Its shim saved the template warmed up (GuestWarmUp in the maker's VM).
        #expect(bootedLog.split(separator: "\n").contains { $0.contains("] template ") && $0.contains(": guest warmed up by a throwaway container") },
                "the maker's warm-up: \(bootedLog.suffix(2000))")

        // Each pod takes the ready member; the one that replaces it restores the NIC template.
        var claimed = [booted]
        for id in ["tw2", "tw3"] {
            let run = try containerd.ctr(["run", "--rm"] + runtime + [image, id, "echo", "warm"])
            #expect(run.status == 0 && run.stdout == "warm\n", "ctr said: \(run.stdout) \(run.stderr.suffix(800))")
            #expect(containerd.containerdLog().contains("pod default/\(id) claimed warm sandbox \(claimed.last ?? "")"))
            var next: [String] = []
            #expect(waitUntil(seconds: 120) { next = Pool.members().ready; return next.count == 1 && !claimed.contains(next[0]) },
                    "the pool was not topped up: \(Pool.members())")
            let member = try #require(next.first)
            let log = Pool.memberLog(member)
            #expect(log.contains("VM restored from template"), "member \(member) booted: \(log.suffix(2000))")
            for line in log.split(separator: "\n") where line.contains("VM restored from template") {
                print("BENCH templates: warm member \(member): \(line.split(separator: ":").suffix(2).joined(separator: ":"))")
            }
            claimed.append(member)
        }

        // containerd stops: the members go; the templates stay until removed.
        try Pool.stopContainerdAndExpectNothingLeft(containerd, besides: [".template"])
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs where the e2e tests use our VMM (KATA_E2E_BACKEND=kvm: the nested KVM host), and
    /// elsewhere prints why it skipped and where it runs.
    static func onOurVMM(_ what: String, elsewhere: String) -> Self {
        .enabled("\(what) need our VMM: KATA_E2E_BACKEND=kvm runs this inside the nested KVM host") {
            if VMRuntimeE2ETests.backend == "kvm" { return true }
            print("\(what): skipped on backend \(VMRuntimeE2ETests.backend); \(elsewhere)")
            return false
        }
    }
}
