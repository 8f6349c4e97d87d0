// The sandbox's host directory while a hostile guest writes the share: the rootfs bind mount is
// nodev,nosuid, and host-side removal never leaves the tree (needs root: mount, mknod).

import Foundation
import Glibc
import Testing
@testable import Runtime

/// A scratch sandbox directory with one container's bundle rootfs beside it.
final class ScratchSandbox {
    let base: String
    let paths: SandboxPaths
    var rootfs: String { base + "/bundle-rootfs" }

    init() throws {
        var template = Array("/tmp/sandbox-paths-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw RuntimeError.system(operation: "mkdtemp", errno: errno) }
        base = String(cString: template)
        paths = try SandboxPaths(sandboxDirectory: base + "/sandboxes", sandboxID: "pod1")
        try paths.create()
        guard mkdir(rootfs, 0o755) == 0 else { throw RuntimeError.system(operation: "mkdir", errno: errno) }
    }

    deinit {
        SandboxPaths.unmountAll(below: base)
        try? FileManager.default.removeItem(atPath: base)
    }

    static func mountOptions(_ point: String) -> [String] {
        guard let text = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return [] }
        let line = text.split(separator: "\n").last { $0.split(separator: " ").dropFirst().first.map(String.init) == point }
        return line.map { $0.split(separator: " ")[3].split(separator: ",").map(String.init) } ?? []
    }
}

@Suite(.serialized) struct SandboxPathsTests {
    @Test func sharedRootfsIsNodevAndNosuid() throws {
        let sandbox = try ScratchSandbox()
        try #require(mknod(sandbox.rootfs + "/null", S_IFCHR | 0o666, 0x103) == 0, "needs root")
        try sandbox.paths.shareRootfs(containerID: "c1", from: sandbox.rootfs, readOnly: false)
        let target = sandbox.paths.hostRootfs("c1")
        let options = ScratchSandbox.mountOptions(target)
        #expect(options.contains("nodev") && options.contains("nosuid") && options.contains("rw"), "\(options)")
        // The device node is still there, but it does not open through the share.
        let fd = open(target + "/null", O_RDWR)
        #expect(fd < 0 && errno == EACCES)
        if fd >= 0 { close(fd) }
        try sandbox.paths.shareRootfs(containerID: "c2", from: sandbox.rootfs, readOnly: true)
        let readOnly = ScratchSandbox.mountOptions(sandbox.paths.hostRootfs("c2"))
        #expect(readOnly.contains("ro") && readOnly.contains("nodev") && readOnly.contains("nosuid"), "\(readOnly)")
    }
}
