import Foundation
import Glibc
import Testing

@testable import Hypervisor

/// Per-sandbox QEMU uids (QEMUUserPool, docs/security.md 8.2): each claim holds a flock; a uid is
/// free again once its claim is released, or its process is gone.
@Suite struct QEMUUserPoolTests {
    static func scratchDirectory() -> String {
        var template = Array("/tmp/qemu-uids-XXXXXX".utf8CString)
        _ = mkdtemp(&template)
        return String(cString: template) + "/locks"
    }

    @Test func twoSandboxesGetTwoUidsAndAReleasedOneIsReused() throws {
        let directory = Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let pool = QEMUUserPool(base: 2_000_000_000, count: 2, directory: directory)
        var first: QEMUUserClaim? = try pool.claim()
        let second = try pool.claim()
        #expect(first?.user == QEMUUser(uid: 2_000_000_000, gid: 2_000_000_000))
        #expect(second.user == QEMUUser(uid: 2_000_000_001, gid: 2_000_000_001))
        #expect(throws: HypervisorError.self) { _ = try pool.claim() }  // every uid taken
        first = nil  // QEMU ended: the uid is released
        #expect(try pool.claim().user.uid == 2_000_000_000)
        _ = second
    }

    @Test func aUidClaimedByAnotherProcessIsSkippedUntilThatProcessEnds() throws {
        let directory = Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let pool = QEMUUserPool(base: 2_000_000_000, count: 4, directory: directory)
        _ = try pool.claim()  // creates the directory; released at once
        // Another shim (here flock(1)) holds the first uid's lock.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = ["-x", directory + "/2000000000.lock", "sleep", "4"]
        try holder.run()
        var skipped = false
        for _ in 0..<200 where !skipped {
            skipped = (try? pool.claim().user.uid) == 2_000_000_001
            if !skipped { usleep(50_000) }
        }
        #expect(skipped, "the uid flock(1) holds was claimed again")
        holder.waitUntilExit()  // the holder ends: its lock goes with it
        #expect(try pool.claim().user.uid == 2_000_000_000)
    }

    @Test func rangesWithRootOrNothingInThemAreRefused() {
        #expect(throws: HypervisorError.self) { _ = try QEMUUserPool(base: 0, count: 10, directory: "/tmp/x").claim() }
        #expect(throws: HypervisorError.self) { _ = try QEMUUserPool(base: 5000, count: 0, directory: "/tmp/x").claim() }
    }
}
