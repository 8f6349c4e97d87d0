// The nested KVM host (scripts/nested-kvm.sh, docs/nested-kvm.md): an L1 Linux under QEMU/TCG
// with an emulated SVM CPU, whose kvm_amd gives a real KVM. Its own contract (status, streams,
// deadline, nothing left behind), then our in-process VMM end to end inside it
// (scripts/nested-tests.sh ci: the agent over vsock, ctr run --rm through containerd on backend
// kvm with 2 vCPUs). Not run inside L1 itself.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: NestedKVM.canRun, "needs /dev/kvm and qemu-system-x86_64, and not to be inside L1 already"))
struct NestedKVMTests {
    @Test(.timeLimit(.minutes(5)))
    func runsACommandInL1WithItsStreamsAndExitStatus() throws {
        let before = NestedKVM.jobDirectories()
        let uname = try NestedKVM.run(["uname", "-r"])
        #expect(uname.status == 0, "stderr: \(uname.stderr)")
        #expect(uname.stdout.hasPrefix("6.") && uname.stdout.hasSuffix("-amd64\n"), "L1's release: \(uname.stdout)")
        #expect(uname.stdout != (try runCommand(["uname", "-r"]).stdout), "uname ran on the host, not in L1")

        let three = try NestedKVM.run(["sh", "-c", "echo to-out; echo to-err >&2; test -c /dev/kvm && cd \(repositoryRoot) && test -f Package.swift && exit 3"])
        #expect(three.status == 3, "stderr: \(three.stderr)")
        #expect(three.stdout == "to-out\n")
        #expect(three.stderr.contains("to-err\n"))
        try NestedKVM.expectNothingLeft(besides: before)
    }

    @Test(.timeLimit(.minutes(5)))
    func aHangingL1IsKilledByItsDeadline() throws {
        let before = NestedKVM.jobDirectories()
        let hung = try NestedKVM.run(["--timeout", "40", "--", "sleep", "600"], raw: true)
        #expect(hung.status == 124)
        #expect(hung.stderr.contains("did not finish within 40 s; killed it"), "stderr: \(hung.stderr)")
        try NestedKVM.expectNothingLeft(besides: before)
    }

    /// Retries once, only for a run the deadline killed (docs/nested-kvm.md, "Hangs"): the hang is
    /// printed with where L1's CPU was, and the retry must pass. Any other failure fails at once.
    /// The limit holds two deadlines of 1020 s and L1's boots.
    @Test(.timeLimit(.minutes(38)))
    func ourVMMRunsTheAgentAndContainersOnARealKVM() throws {
        let before = NestedKVM.jobDirectories()
        // Up to two attempts; a hung one is printed in full.
        var result = try NestedKVM.runCI()
        if result.status == 124 {
            print("nested: ATTENTION: the ci run hung inside L1 and was killed by its deadline; attempt 2 of 2. Its output:")
            print(result.stdout.split(separator: "\n").map { "nested(hung)| " + $0 }.joined(separator: "\n"))
            print(result.stderr.split(separator: "\n").suffix(40).map { "nested(hung)! " + $0 }.joined(separator: "\n"))
            result = try NestedKVM.runCI()
        }
        print(result.stdout.split(separator: "\n").map { "nested| " + $0 }.joined(separator: "\n"))
        #expect(result.status == 0, "inside L1: \(result.stderr.suffix(6000))")
        #expect(result.stdout.contains("nested-tests: ci passed, nothing left in L1"))
        try NestedKVM.expectNothingLeft(besides: before)
    }
}

enum NestedKVM {
    static var canRun: Bool {
        ProcessInfo.processInfo.environment["NESTED_KVM_L1"] == nil && access("/dev/kvm", R_OK | W_OK) == 0
            && access("/usr/bin/qemu-system-x86_64", X_OK) == 0
    }

    /// `scripts/nested-tests.sh ci` inside L1, with a deadline well above its suites' 290-350 s
    /// (L1's boot adds 15-40 s), and above the 580-620 s they took on a slower machine (2026-12-06).
    static func runCI() throws -> CommandResult {
        let t0 = Date()
        let result = try run(["--timeout", "1020", "--", repositoryRoot + "/scripts/nested-tests.sh", "ci"], raw: true)
        print("nested: scripts/nested-tests.sh ci took \(Int(Date().timeIntervalSince(t0))) s (L1 boot included), status \(result.status)")
        return result
    }

    /// `scripts/nested-kvm.sh run -- ARGS`, or `run ARGS` when `raw` (ARGS carry their own `--`).
    static func run(_ arguments: [String], raw: Bool = false) throws -> CommandResult {
        try runCommand([repositoryRoot + "/scripts/nested-kvm.sh", "run"] + (raw ? arguments : ["--"] + arguments))
    }

    /// The job directories in /tmp now.
    static func jobDirectories() -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("nested-kvm.") })
    }

    /// No L1 (QEMU with a nested-kvm job) and no new job directory left on the host.
    static func expectNothingLeft(besides before: Set<String>, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let l1 = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { pid in
            let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return cmdline.contains("nestedkvm.job=")
        }
        #expect(l1.isEmpty, "L1 QEMU left: \(l1)", sourceLocation: sourceLocation)
        let jobs = jobDirectories().subtracting(before)
        #expect(jobs.isEmpty, "job directories left in /tmp: \(jobs)", sourceLocation: sourceLocation)
    }
}
