// Warm sandboxes through containerd (docs/warm-sandboxes.md): with `[factory] vm_cache_number`,
// the first pod boots its own VM and `start` fills the pool; the next pod is handed a warm VM
// (claimed), runs in it, and the pool is topped up again; a pod that needs a VM of another size
// boots its own; a claimed sandbox goes with its pod; and when containerd stops, the warm shims,
// their VMs and their pool entries go too.

import Foundation
import Runtime
import Testing
import SystemSupport

@Suite(.serialized) struct WarmPoolE2ETests {
    static var poolsRoot: String { VMRuntimeE2ETests.sandboxRoot + "/.warm" }

    /// The pool directories' entries: (ready member ids, every member id).
    /// A member's own log (`<pool>/<id>.log`), written until a pod claims it.
    static func memberLog(_ id: String) -> String {
        let pools = (try? FileManager.default.contentsOfDirectory(atPath: poolsRoot)) ?? []
        return pools.compactMap { try? String(contentsOfFile: poolsRoot + "/" + $0 + "/" + id + ".log", encoding: .utf8) }.joined()
    }

    static func members() -> (ready: [String], all: [String]) {
        let pools = (try? FileManager.default.contentsOfDirectory(atPath: poolsRoot)) ?? []
        var ready: [String] = []
        var all: [String] = []
        for pool in pools {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: poolsRoot + "/" + pool)) ?? []
            ready += names.filter { $0.hasSuffix(".sock") }.map { String($0.dropLast(5)) }
            all += names.filter { $0.hasSuffix(".lock") && $0 != "pool.lock" }.map { String($0.dropLast(5)) }
        }
        return (ready.sorted(), all.sorted())
    }

    @Test(.timeLimit(.minutes(15)))
    func warmSandboxesAreClaimedReplenishedAndEndWithContainerd() async throws {
        let containerd = try VMRuntimeE2ETests.start("warm", extraTOML: "[factory]\nvm_cache_number = 1")
        defer { containerd.stop(); rmdir(VMRuntimeE2ETests.sandboxRoot) }
        let runtime = VMRuntimeE2ETests.runtime
        let image = VMRuntimeE2ETests.image

        // The first pod finds the pool empty: it boots its own VM, and start spawns one warm shim.
        let cold = try containerd.ctr(["run", "--rm"] + runtime + [image, "w1", "echo", "cold"])
        #expect(cold.status == 0 && cold.stdout == "cold\n", "ctr said: \(cold.stdout) \(cold.stderr)")
        var ready: [String] = []
        #expect(waitUntil(seconds: 240) { ready = Self.members().ready; return ready.count == 1 },
                "no warm sandbox became ready: \(Self.members()); log: \(containerd.containerdLog().suffix(3000))")
        let first = try #require(ready.first)
        #expect(FileManager.default.fileExists(atPath: VMRuntimeE2ETests.sandboxRoot + "/" + first), "the warm VM's directory")
        // Before it was offered, it ran its throwaway container in the guest (GuestWarmUp).
        let memberLog = Self.memberLog(first)
        #expect(memberLog.contains("guest warmed up by a throwaway container"), "the member's log: \(memberLog.suffix(2000))")

        // The next pod takes it: the agent already answers, so only the sandbox and container are created.
        let started = Date()
        let warm = try containerd.ctr(["run", "--rm"] + runtime + [image, "w2", "sh", "-c", "echo warm; cat /proc/cmdline"])
        let seconds = Date().timeIntervalSince(started)
        print("BENCH warm pool: ctr run --rm from a warm sandbox: \(String(format: "%.2f", seconds)) s")
        #expect(warm.status == 0 && warm.stdout.hasPrefix("warm\n"),
                "ctr said: \(warm.stdout) \(warm.stderr.suffix(800)); containerd's log: \(containerd.containerdLog().split(separator: "\n").filter { !$0.contains("level=debug") }.suffix(40).joined(separator: "\n"))")
        let log = containerd.containerdLog()
        #expect(log.contains("pod default/w2 claimed warm sandbox \(first)"), "log: \(log.suffix(3000))")
        // The claimed VM went with its pod (--rm): no directory under either name.
        #expect(waitUntil(seconds: 20) {
            !FileManager.default.fileExists(atPath: VMRuntimeE2ETests.sandboxRoot + "/" + first)
                && !FileManager.default.fileExists(atPath: VMRuntimeE2ETests.sandboxRoot + "/w2")
        })
        // Replenished: a new member, booting or ready.
        var replacement: [String] = []
        #expect(waitUntil(seconds: 240) { replacement = Self.members().ready; return replacement.count == 1 && replacement != [first] },
                "the pool was not topped up: \(Self.members())")
        #expect(Self.members().all.count == 1, "one member only: \(Self.members())")

        // A pod that sizes its VM boots its own and leaves the warm one waiting.
        let sized = try containerd.ctr(["run", "--rm", "--memory-limit", "\(256 << 20)"] + runtime + [image, "w3", "echo", "sized"])
        #expect(sized.status == 0 && sized.stdout == "sized\n", "ctr said: \(sized.stdout) \(sized.stderr)")
        #expect(containerd.containerdLog().contains("pod w3 boots its own VM, not a warm one: its resource limits size the VM"))
        #expect(Self.members().ready == replacement, "the warm one stays: \(Self.members())")

        // A warm shim that ends (SIGTERM) reaps its VM, its directory and its pool entries; the
        // next pod boots its own VM and fills the pool again.
        let member = try #require(replacement.first)
        let memberPIDs = containerd.shimProcesses().filter { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains(member)
        }
        try #require(memberPIDs.count == 1, "the warm shim of \(member): \(memberPIDs)")
        #expect(kill(memberPIDs[0], SIGTERM) == 0)
        #expect(waitUntil(seconds: 30) { kill(memberPIDs[0], 0) != 0 }, "the warm shim did not end")
        #expect(Self.members().all.isEmpty, "its pool entries: \(Self.members())")
        #expect(!FileManager.default.fileExists(atPath: VMRuntimeE2ETests.sandboxRoot + "/" + member), "its VM's directory")
        #expect(waitUntil(seconds: 10) { VMRuntimeE2ETests.qemuProcesses().isEmpty }, "its QEMU: \(VMRuntimeE2ETests.qemuProcesses())")
        let refill = try containerd.ctr(["run", "--rm"] + runtime + [image, "w4", "echo", "refill"])
        #expect(refill.status == 0 && refill.stdout == "refill\n", "ctr said: \(refill.stdout) \(refill.stderr)")
        #expect(waitUntil(seconds: 240) { Self.members().ready.count == 1 }, "the pool was not filled again: \(Self.members())")

        // containerd stops: the warm shim ends with it and takes its VM and entries along.
        try Self.stopContainerdAndExpectNothingLeft(containerd)
    }

    /// Stops containerd (SIGTERM) and expects every shim, QEMU, pool entry, sandbox directory
    /// and mount of ours gone with it; `besides` names what may stay in the sandbox directory.
    static func stopContainerdAndExpectNothingLeft(
        _ containerd: ContainerdHarness, besides: Set<String> = [], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let pidText = (try? String(contentsOfFile: containerd.directory + "/containerd.pid", encoding: .utf8)) ?? ""
        let pid = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)), sourceLocation: sourceLocation)
        #expect(kill(pid, SIGTERM) == 0, sourceLocation: sourceLocation)
        #expect(waitUntil(seconds: 30) { kill(pid, 0) != 0 }, "containerd did not stop", sourceLocation: sourceLocation)
        #expect(waitUntil(seconds: 30) { containerd.shimProcesses().isEmpty }, "shims left: \(containerd.shimProcesses())",
                sourceLocation: sourceLocation)
        #expect(waitUntil(seconds: 20) { VMRuntimeE2ETests.qemuProcesses().isEmpty }, "QEMU left: \(VMRuntimeE2ETests.qemuProcesses())",
                sourceLocation: sourceLocation)
        #expect(members().all.isEmpty, "pool entries left: \(members())", sourceLocation: sourceLocation)
        let leftovers = Set((try? FileManager.default.contentsOfDirectory(atPath: VMRuntimeE2ETests.sandboxRoot)) ?? [])
        #expect(leftovers.subtracting(besides).isEmpty, "left in the sandbox directory: \(leftovers)", sourceLocation: sourceLocation)
        let mounts = ((try? readWholeTextFile("/proc/self/mounts")) ?? "").split(separator: "\n")
            .filter { $0.contains(VMRuntimeE2ETests.sandboxRoot) }
        #expect(mounts.isEmpty, "mounts left: \(mounts)", sourceLocation: sourceLocation)
    }
}
