import Testing

@testable import Agent

@Suite struct GuestMountsTests {
    @Test func readsMountPointsFromMountinfo() {
        let mountinfo = """
            22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
            23 1 0:22 / /sys rw,nosuid shared:6 - sysfs sysfs rw
            24 1 0:23 / /mnt/with\\040space rw - tmpfs tmpfs rw
            broken
            """
        let points = GuestMounts.mountPoints(mountinfo: mountinfo)
        #expect(points == ["/proc", "/sys", "/mnt/with space"])
    }

    @Test func bootSequenceMountsParentsFirst() {
        let targets = GuestMounts.bootSequence.map(\.target)
        #expect(targets.first == "/proc")
        for (index, target) in targets.enumerated() {
            // Every parent of a target that is itself a target comes earlier.
            for (other, parent) in targets.enumerated() where target.hasPrefix(parent + "/") {
                #expect(other < index, "\(parent) must be mounted before \(target)")
            }
        }
        #expect(Set(targets).isSuperset(of: ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp", "/sys/fs/cgroup"]))
    }
}
