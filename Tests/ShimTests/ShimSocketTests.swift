// The shim's socket file is owner-only from the moment bind creates it, whatever the umask:
// there is no window between bind and a chmod in which another user could connect.

import CSupport
import Foundation
import Testing
@testable import Shim

@Suite(.serialized) struct ShimSocketTests {
    @Test func socketFileIsOwnerOnlyFromBind() throws {
        let directory = try TemporaryDirectory("sock-mode")
        defer { directory.remove() }
        let path = directory.path + "/s"
        let previous = umask(0)
        let fd = ks_unix_listen(path, 128, 0, 1)
        umask(previous)
        try #require(fd >= 0)
        defer { close(fd) }
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
    }
}
