import SystemSupport
import Testing

@Suite struct MountInfoTests {
    @Test func parsesTheFieldsOfALine() throws {
        let line = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
        let mount = try #require(MountInfo(line: line))
        #expect(mount.mountID == 36)
        #expect(mount.parentID == 35)
        #expect(mount.root == "/mnt1")
        #expect(mount.mountPoint == "/mnt2")
        #expect(mount.mountOptions == "rw,noatime")
        #expect(mount.fileSystemType == "ext3")
        #expect(mount.source == "/dev/root")
    }

    @Test func findsTheSeparatorAfterAnyNumberOfOptionalFields() throws {
        let none = try #require(MountInfo(line: "22 1 0:21 / /proc rw,nosuid - proc proc rw"))
        #expect(none.fileSystemType == "proc" && none.mountPoint == "/proc")
        let two = try #require(MountInfo(line: "25 22 0:5 / /dev rw shared:2 master:3 - devtmpfs udev rw,size=10k"))
        #expect(two.fileSystemType == "devtmpfs" && two.source == "udev")
    }

    @Test func decodesOctalEscapes() throws {
        let line = #"40 22 0:40 /a\134b /run/my\040dir\011x\012y rw - tmpfs my\040source rw"#
        let mount = try #require(MountInfo(line: line))
        #expect(mount.mountPoint == "/run/my dir\tx\ny")
        #expect(mount.root == #"/a\b"#)
        #expect(mount.source == "my source")
    }

    @Test func keepsABackslashThatIsNoEscape() {
        #expect(MountInfo.unescape(#"a\x"#) == #"a\x"#)
        #expect(MountInfo.unescape(#"a\04"#) == #"a\04"#)
        #expect(MountInfo.unescape(#"a\089"#) == #"a\089"#)
        #expect(MountInfo.unescape(#"tail\040"#) == "tail ")
        #expect(MountInfo.unescape("plain") == "plain")
    }

    @Test func skipsMalformedLines() {
        let text = """
            1 0 0:1 / / rw - rootfs rootfs rw
            garbage
            2 1 0:2 / /proc rw no-separator here at all
            3 1 0:3 / /sys rw - sysfs sysfs rw

            """
        #expect(MountInfo.parse(text).map(\.mountPoint) == ["/", "/sys"])
    }

    @Test func readsThisProcessesMounts() throws {
        let mounts = try MountInfo.current()
        #expect(mounts.contains { $0.mountPoint == "/" })
        #expect(mounts.contains { $0.mountPoint == "/proc" && $0.fileSystemType == "proc" })
    }
}
