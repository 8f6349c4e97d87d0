import Foundation
import OCI
import Testing
@testable import Shim

@Suite struct BundleAndMountTests {
    @Test func addressIsWrittenAtomicallyAndReadBack() throws {
        let directory = try TemporaryDirectory("bundle")
        defer { directory.remove() }
        let bundle = try makeBundle(in: directory.path, id: "b")
        #expect(try bundle.readAddress() == nil)
        try bundle.writeAddress("unix:///run/containerd/s/abc")
        try bundle.writeAddress("unix:///run/containerd/s/def")  // overwrite works
        #expect(try bundle.readAddress() == "unix:///run/containerd/s/def")
        #expect(!FileManager.default.fileExists(atPath: bundle.path + "/.address"))
    }

    @Test func criAnnotationsGroupContainersIntoPods() throws {
        let directory = try TemporaryDirectory("cri")
        defer { directory.remove() }
        let plain = try makeBundle(in: directory.path, id: "p").readSpec()
        #expect(plain.criRole == .single)
        let sandbox = try makeBundle(in: directory.path, id: "s", annotations: [
            OCISpec.containerTypeAnnotation: "sandbox", OCISpec.sandboxIDAnnotation: "s",
        ]).readSpec()
        #expect(sandbox.criRole == .sandbox(id: "s"))
        let member = try makeBundle(in: directory.path, id: "c", annotations: [
            OCISpec.containerTypeAnnotation: "container", OCISpec.sandboxIDAnnotation: "s",
        ]).readSpec()
        #expect(member.criRole == .container(sandboxID: "s"))
        let flags = try ShimFlags(parsing: ["-namespace", "k8s.io", "-address", "/c.sock", "-id", "c", "start"])
        let command = StartCommand(flags: flags, bundle: BundleDirectory(path: directory.path + "/c"))
        #expect(command.socket(for: member).socket == ShimSocket(containerdAddress: "/c.sock", namespace: "k8s.io", groupID: "s"))
        #expect(command.socket(for: member).joinsExistingSandbox == "s")
    }

    @Test func badSpecIsReported() throws {
        let directory = try TemporaryDirectory("badspec")
        defer { directory.remove() }
        try "{not json".write(toFile: directory.path + "/config.json", atomically: true, encoding: .utf8)
        #expect(throws: BundleError.self) { try BundleDirectory(path: directory.path).readSpec() }
        #expect(throws: BundleError.readSpec(path: directory.path + "/none/config.json", errno: ENOENT)) {
            try BundleDirectory(path: directory.path + "/none").readSpec()
        }
    }

    @Test func socketListensOwnerOnlyAndRefusesLongPaths() throws {
        let directory = try TemporaryDirectory("sock")
        defer { directory.remove() }
        let socket = ShimSocket(containerdAddress: "/a", namespace: "n", groupID: "g", directory: directory.path + "/s")
        #expect(!socket.canConnect())
        let fd = try socket.listen()
        defer { close(fd) }
        var info = stat()
        #expect(stat(socket.path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(socket.canConnect())
        #expect(ShimSocket.boundPath(of: fd) == socket.path)
        socket.remove()
        #expect(!socket.canConnect())
        let long = ShimSocket(path: directory.path + "/" + String(repeating: "x", count: 120))
        #expect(throws: SocketError.pathTooLong(long.path)) { try long.listen() }
        #expect(throws: SocketError.notUnixAddress("tcp://x")) { try ShimSocket(address: "tcp://x") }
    }

    @Test func rootfsMountsStackAndUnmountIdempotently() throws {
        let directory = try TemporaryDirectory("mount")
        defer { directory.remove() }
        let source = directory.path + "/src", target = directory.path + "/rootfs"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try "x".write(toFile: source + "/marker", atomically: true, encoding: .utf8)
        try RootfsMounts.mount([
            RootfsMount(type: "bind", source: source, options: ["rbind", "ro"]),
            RootfsMount(type: "tmpfs", source: "tmpfs", options: ["nosuid", "size=1m"]),
        ], on: target)
        #expect(RootfsMounts.isMountPoint(target))
        #expect(!FileManager.default.fileExists(atPath: target + "/marker"))  // tmpfs on top
        try RootfsMounts.unmountAll(target)
        #expect(!RootfsMounts.isMountPoint(target))
        try RootfsMounts.unmountAll(target)  // nothing left: still fine
        try RootfsMounts.unmountAll(directory.path + "/missing")
        // A failing mount in the middle takes off the ones before it.
        #expect(throws: RootfsMountError.self) {
            try RootfsMounts.mount([
                RootfsMount(type: "tmpfs", source: "tmpfs", options: []),
                RootfsMount(type: "nosuchfs", source: "x", options: []),
            ], on: target)
        }
        #expect(!RootfsMounts.isMountPoint(target))
    }
}
