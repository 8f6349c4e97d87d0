// The vsock helpers of CGuest (ks_agent.c) on this host's real AF_VSOCK (a virtio transport:
// binding works; nothing can connect back, and there is no loopback transport).

import CGuest
import Foundation
import Testing

@Suite struct VsockShimTests {
    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    @Test func listenReportsItsAddressAndRefusesASecondBind() throws {
        let port = UInt32.random(in: 20_000...60_000)
        let fd = ks_vsock_listen(ks_vmaddr_cid_any, port, 16)
        try #require(fd >= 0, "ks_vsock_listen: errno \(-fd)")
        defer { close(fd) }
        var cid: UInt32 = 0
        var bound: UInt32 = 0
        #expect(ks_vsock_local_address(fd, &cid, &bound) == 0)
        #expect(bound == port)
        #expect(cid == ks_vmaddr_cid_any)

        #expect(ks_vsock_listen(ks_vmaddr_cid_any, port, 16) == -EADDRINUSE)
    }

    @Test func failuresReturnNegativeErrnoAndLeakNothing() {
        // Other suites open and close descriptors concurrently, so a leak is measured over many
        // failing calls: one leaked socket per call would show as `attempts` more descriptors.
        let attempts = 40
        let before = Self.openDescriptors()
        for _ in 0..<attempts {
            // Nobody listens on the host side of this port; no loopback transport either.
            let rc = ks_vsock_connect(2, UInt32.random(in: 20_000...60_000))
            #expect(rc < 0)
            if rc >= 0 { close(rc) }
        }
        var cid: UInt32 = 0
        var port: UInt32 = 0
        #expect(ks_vsock_local_address(-1, &cid, &port) == -EBADF)
        // A Unix socket is not a vsock socket.
        let unix = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(ks_vsock_local_address(unix, &cid, &port) == -EAFNOSUPPORT)
        close(unix)
        #expect(Self.openDescriptors() - before < attempts / 2)
    }
}
