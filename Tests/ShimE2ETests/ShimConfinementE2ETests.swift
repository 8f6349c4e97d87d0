// The shim's own confinement, seen on a running pod (docs/security.md 8.4 to 8.6): every thread
// of the shim under the process-wide seccomp filter, the capability sets cut down, QEMU's bounding
// set no larger than the shim's, the virtio-fs server's thread with the share as its root, and the
// pod still working (a file written through virtio-fs, an exec).

import Foundation
import Shim
import Testing

@Suite(.serialized) struct ShimConfinementE2ETests {
    typealias E2E = VMRuntimeE2ETests

    /// CAP_CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID, KILL, SETGID, SETUID (0-7),
    /// NET_ADMIN (12), SYS_ADMIN (21), MKNOD (27).
    static let keptCapabilities = "00000000082010ff"

    /// The shim's default per-sandbox QEMU uids (RuntimeConfig.qemuUIDBase, qemuUIDCount).
    static let qemuUIDs: Range<UInt32> = 2_000_000_000..<2_000_001_000

    /// QEMU's uid when real, effective, saved and file system uids agree (nil otherwise).
    static func qemuUID(_ pid: Int32) -> UInt32? {
        let ids = (status("/proc/\(pid)/status")["Uid"] ?? "").split(separator: "\t").compactMap { UInt32($0) }
        let gids = (status("/proc/\(pid)/status")["Gid"] ?? "").split(separator: "\t").compactMap { UInt32($0) }
        guard ids.count == 4, Set(ids).count == 1, gids == ids else { return nil }
        return ids[0]
    }

    /// Each pod's QEMU runs as a uid (and gid) of its own, and a uid is claimed again once its
    /// pod is gone (docs/security.md 8.2).
    @Test(.timeLimit(.minutes(8)), .enabled(if: E2E.backend != "kvm", "the kvm backend has no QEMU"))
    func twoPodsQEMUsRunAsTwoUsersAndAFreedUidIsReused() async throws {
        let containerd = try E2E.start("uids")
        defer { containerd.stop(); rmdir(E2E.sandboxRoot) }
        func qemuUIDs() -> [UInt32] { E2E.qemuProcesses().compactMap { Self.qemuUID($0) }.sorted() }
        for id in ["u1", "u2"] {
            #expect(try containerd.ctr(["run", "-d"] + E2E.runtime + [E2E.image, id, "sleep", "1000"]).status == 0)
        }
        #expect(waitUntil(seconds: 60) { qemuUIDs().count == 2 }, "QEMU uids: \(qemuUIDs())")
        let uids = qemuUIDs()
        #expect(uids.count == 2 && Set(uids).count == 2 && uids.allSatisfy { Self.qemuUIDs.contains($0) }, "QEMU uids: \(uids)")
        // u1's QEMU goes; the next pod gets its uid back (the lowest free one).
        let u1UID = try #require(uids.first)
        let byUID = Dictionary(uniqueKeysWithValues: E2E.qemuProcesses().compactMap { pid in Self.qemuUID(pid).map { ($0, pid) } })
        let u1Pid = byUID[u1UID] ?? -1
        let owner = ["u1", "u2"].first { id in
            ((try? String(contentsOfFile: "/proc/\(u1Pid)/cmdline", encoding: .utf8)) ?? "").contains("/" + id + "/")
        } ?? "u1"
        // The VM stops when its last task is deleted.
        #expect(try containerd.ctr(["task", "kill", "-s", "KILL", owner]).status == 0)
        #expect(waitUntil(seconds: 30) { (try? containerd.ctr(["task", "delete", owner]).status) == 0 })
        _ = try containerd.ctr(["containers", "delete", owner])
        #expect(waitUntil(seconds: 60) { qemuUIDs().count == 1 })
        #expect(try containerd.ctr(["run", "-d"] + E2E.runtime + [E2E.image, "u3", "sleep", "1000"]).status == 0)
        #expect(waitUntil(seconds: 60) { qemuUIDs().count == 2 })
        #expect(qemuUIDs().contains(u1UID), "QEMU uids after u3: \(qemuUIDs()), u1's was \(u1UID)")
        let others = ["u1", "u2", "u3"].filter { $0 != owner }
        for id in others { _ = try containerd.ctr(["task", "kill", "-s", "KILL", id]) }
        for id in others {
            _ = waitUntil(seconds: 30) { (try? containerd.ctr(["task", "delete", id]).status) == 0 }
            _ = try containerd.ctr(["containers", "delete", id])
        }
        #expect(waitUntil(seconds: 60) { qemuUIDs().isEmpty })
        try E2E.expectClean(containerd, ids: ["u1", "u2", "u3"])
    }

    static func status(_ path: String) -> [String: String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return fields
    }

    @Test(.timeLimit(.minutes(6)))
    func aRunningShimIsFilteredOnEveryThreadWithFewerCapabilities() async throws {
        let containerd = try E2E.start("confine")
        defer { containerd.stop(); rmdir(E2E.sandboxRoot) }
        let shim = try FaultE2ETests.startSleeper(containerd, "c1")
        try #require(shim > 0, "containerd's log:\n\(containerd.containerdLog().suffix(6000))")
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(shim)/task")) ?? []
        #expect(tasks.count > 3, "threads: \(tasks)")
        for tid in tasks {
            let fields = Self.status("/proc/\(shim)/task/\(tid)/status")
            #expect(fields["Seccomp"] == "2", "thread \(tid) (\(fields["Name"] ?? "?")): \(fields)")
            #expect(fields["CapBnd"] == Self.keptCapabilities && fields["CapEff"] == Self.keptCapabilities,
                    "thread \(tid): \(fields)")
            #expect(fields["CapPrm"] == Self.keptCapabilities && fields["CapInh"] == "0000000000000000")
        }
        if E2E.backend != "kvm" {
            let qemu = E2E.qemuProcesses()
            try #require(qemu.count == 1, "QEMU processes: \(qemu)")
            let fields = Self.status("/proc/\(qemu[0])/status")
            // QEMU's filter on top of the shim's (Seccomp_filters counts both), and no way back to
            // a dropped capability.
            #expect(fields["Seccomp"] == "2" && Int(fields["Seccomp_filters"] ?? "") ?? 0 >= 2, "\(fields)")
            #expect(fields["CapBnd"] == Self.keptCapabilities, "\(fields)")
        }
        if E2E.backend != "kvm" {
            // The virtio-fs server's thread lives in a mount namespace of its own whose root is
            // the share: the host's files are not there, only the containers' directories.
            let mountNamespace = { (tid: String) in
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(shim)/task/\(tid)/ns/mnt")) ?? "?"
            }
            let main = mountNamespace("\(shim)")
            let confined = tasks.filter { mountNamespace($0) != main }
            try #require(confined.count == 1, "threads in another mount namespace: \(confined)")
            let tid = confined[0]
            #expect(Self.status("/proc/\(shim)/task/\(tid)/status")["Name"] == "vhost-user")
            let root = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(shim)/task/\(tid)/root")) ?? []
            #expect(root == ["containers"], "the FUSE thread's root: \(root)")
            let rootfs = (try? FileManager.default.contentsOfDirectory(
                atPath: "/proc/\(shim)/task/\(tid)/root/containers/c1/rootfs")) ?? []
            #expect(rootfs.contains("bin"), "c1's rootfs as the FUSE thread sees it: \(rootfs)")
            let mountinfo = (try? String(contentsOfFile: "/proc/\(shim)/task/\(tid)/mountinfo", encoding: .utf8)) ?? ""
            let points = mountinfo.split(separator: "\n").compactMap { $0.split(separator: " ").dropFirst(4).first.map(String.init) }
            #expect(points.first == "/" && points.allSatisfy { $0 == "/" || $0.hasPrefix("/containers/") },
                    "mounts the FUSE thread sees: \(points)")
        }
        // The pod still works: a file through virtio-fs, an exec.
        let exec = try containerd.ctr(["task", "exec", "--exec-id", "e1", "c1", "sh", "-c",
                                       "echo confined > /tmp/f && cat /tmp/f && touch /x && ls -l /x"])
        #expect(exec.status == 0 && exec.stdout.contains("confined"), "exec: \(exec.stdout) \(exec.stderr)")
        #expect(try containerd.ctr(["task", "kill", "-s", "KILL", "c1"]).status == 0)
        try FaultE2ETests.expectStoppedAndDelete(containerd, "c1", code: 137)
        try E2E.expectClean(containerd, ids: ["c1"])
    }
}
