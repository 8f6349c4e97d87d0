// The sandbox's host directory while a hostile guest writes the share: the rootfs bind mount is
// nodev,nosuid, and host-side removal never leaves the tree (needs root: mount, mknod).

import Foundation
import Glibc
import Logging
import OCI
import Shim
import Synchronization
import Testing
@testable import Runtime
import SystemSupport

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

    /// A host directory outside the sandbox holding files "f0"..."f<count-1>" (what must survive).
    func outside(_ name: String, files count: Int = 3) -> String {
        let directory = base + "/" + name
        mkdir(directory, 0o755)
        for i in 0..<count { FileManager.default.createFile(atPath: directory + "/f\(i)", contents: Data("keep".utf8)) }
        return directory
    }

    static func names(_ directory: String) -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
    }

    static func mountOptions(_ point: String) -> [String] {
        guard let text = try? readWholeTextFile("/proc/self/mounts") else { return [] }
        let line = text.split(separator: "\n").last { $0.split(separator: " ").dropFirst().first.map(String.init) == point }
        return line.map { $0.split(separator: " ")[3].split(separator: ",").map(String.init) } ?? []
    }
}

@Suite(.serialized) struct SandboxPathsTests {
    /// The share is a shared mount point of its own (the FUSE thread's namespace receives what is
    /// mounted below it later, docs/security.md 8.6); removing the sandbox removes it.
    @Test func theShareIsASharedMountPointUntilTheSandboxGoes() throws {
        let sandbox = try ScratchSandbox()
        let mountinfo = (try? readWholeTextFile("/proc/self/mountinfo")) ?? ""
        let line = mountinfo.split(separator: "\n").last { $0.split(separator: " ").dropFirst(4).first.map(String.init) == sandbox.paths.shared }
        #expect(line?.contains(" shared:") == true, "\(line.map(String.init) ?? "not a mount point")")
        try sandbox.paths.create()  // again: no second mount
        #expect(SandboxPaths.mountPoints(below: sandbox.paths.root) == [sandbox.paths.shared])
        sandbox.paths.remove(logger: Logger(label: "test"))
        #expect(SandboxPaths.mountPoints(below: sandbox.base).isEmpty)
        #expect(access(sandbox.paths.root, F_OK) != 0)
    }

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

    @Test func removalDoesNotFollowASymlinkInTheTree() throws {
        let sandbox = try ScratchSandbox()
        let outside = sandbox.outside("outside")
        let container = sandbox.paths.containerDirectory("c1")
        #expect(mkdir(container, 0o755) == 0 && mkdir(container + "/d", 0o755) == 0)
        #expect(symlink(outside, container + "/link") == 0 && symlink(outside, container + "/d/link") == 0)
        sandbox.paths.unshareRootfs(containerID: "c1")
        #expect(!FileManager.default.fileExists(atPath: container))
        #expect(ScratchSandbox.names(outside) == ["f0", "f1", "f2"])
    }

    @Test func removalDoesNotFollowASymlinkAboveIt() throws {
        // The guest replaced shared/containers with a symlink to a host directory holding "c1".
        let sandbox = try ScratchSandbox()
        let outside = sandbox.outside("outside")
        let victim = sandbox.outside("outside/c1")
        let containers = sandbox.paths.shared + "/containers"
        #expect(rename(containers, containers + ".old") == 0 && symlink(outside, containers) == 0)
        sandbox.paths.unshareRootfs(containerID: "c1")
        #expect(ScratchSandbox.names(victim) == ["f0", "f1", "f2"])
    }

    @Test func removalWhileTheGuestSwapsADirectoryForASymlink() throws {
        let sandbox = try ScratchSandbox()
        let files = 40
        let outside = sandbox.outside("outside", files: files)
        let container = sandbox.paths.containerDirectory("c1")
        for _ in 0..<30 {
            mkdir(container, 0o755)
            _ = sandbox.outside("sandboxes/pod1/shared/containers/c1/d", files: files)
            symlink(outside, container + "/dlink")
            let stop = Atomic(false)
            let swapper = Thread {
                while !stop.load(ordering: .relaxed) {
                    rename(container + "/d", container + "/d.real")
                    rename(container + "/dlink", container + "/d")
                    rename(container + "/d", container + "/dlink")
                    rename(container + "/d.real", container + "/d")
                }
            }
            swapper.start()
            sandbox.paths.removeTree(container)
            stop.store(true, ordering: .relaxed)
            while !swapper.isFinished { usleep(1000) }
            sandbox.paths.removeTree(container)
            try #require(ScratchSandbox.names(outside).count == files, "files outside the share were removed")
        }
    }

    @Test func shareRootfsRefusesASymlinkedContainerDirectory() throws {
        let sandbox = try ScratchSandbox()
        let outside = sandbox.outside("outside")
        #expect(symlink(outside, sandbox.paths.containerDirectory("c1")) == 0)
        #expect(throws: RuntimeError.self) {
            try sandbox.paths.shareRootfs(containerID: "c1", from: sandbox.rootfs, readOnly: false)
        }
        #expect(SandboxPaths.mountPoints(below: outside).isEmpty)
        #expect(ScratchSandbox.names(outside) == ["f0", "f1", "f2"])
    }

    static let logger = Logger(label: "test")
    static let single = GuestSpec.Pod(sandboxGuestPID: nil, isCRI: false)

    static func spec(mounts: String, namespaces: String = "") throws -> OCISpec {
        try OCISpec(json: Array("""
            {"ociVersion":"1.0.2","root":{"path":"rootfs"},"mounts":[\(mounts)],"linux":{"namespaces":[\(namespaces)]}}
            """.utf8))
    }

    static func rewritten(_ spec: OCISpec, _ id: String, _ sandbox: ScratchSandbox, pod: GuestSpec.Pod = single) throws -> OCISpec {
        try GuestSpec.rewrite(spec, containerID: id, paths: sandbox.paths, pod: pod, logger: logger)
    }

    @Test func bindMountedFilesReachTheShareWithoutGoingThroughPlantedSymlinks() throws {
        let sandbox = try ScratchSandbox()
        let outside = sandbox.outside("outside")
        let hosts = sandbox.base + "/hosts"
        FileManager.default.createFile(atPath: hosts, contents: Data("127.0.0.1 pod\n".utf8))
        let spec = try Self.spec(mounts: """
            {"destination":"/etc/hosts","type":"bind","source":"\(hosts)","options":["rbind","ro"]}
            """)
        // A symlink planted where the mount goes: replaced by a fresh file, its target untouched.
        let mounts = sandbox.paths.containerDirectory("c1") + "/mounts"
        #expect(mkdir(sandbox.paths.containerDirectory("c1"), 0o755) == 0 && mkdir(mounts, 0o755) == 0)
        #expect(symlink(outside + "/f0", mounts + "/0-hosts") == 0)
        let document = try Self.rewritten(spec, "c1", sandbox)
        let mount = try #require(document.mounts?.first)
        #expect(mount.source == "/run/kata-containers/shared/containers/c1/mounts/0-hosts")
        #expect(mount.options == ["rbind", "ro"] && mount.type == "bind" && mount.destination == "/etc/hosts")
        #expect((try? String(contentsOfFile: outside + "/f0", encoding: .utf8)) == "keep")
        // A bind mount, not a copy: the host's later edits show through, and it is ro,nodev,nosuid.
        // (written in place: a file replaced by rename is a new inode, which no bind mount follows)
        let rewrite = open(hosts, O_WRONLY | O_TRUNC)
        #expect(rewrite >= 0 && write(rewrite, "10.0.0.1 pod\n", 13) == 13)
        close(rewrite)
        #expect((try? String(contentsOfFile: mounts + "/0-hosts", encoding: .utf8)) == "10.0.0.1 pod\n")
        let options = ScratchSandbox.mountOptions(mounts + "/0-hosts")
        #expect(options.contains("ro") && options.contains("nodev") && options.contains("nosuid"), "\(options)")
        // The mounts directory itself a symlink: refused, nothing mounted or written outside.
        #expect(mkdir(sandbox.paths.containerDirectory("c2"), 0o755) == 0)
        #expect(symlink(outside, sandbox.paths.containerDirectory("c2") + "/mounts") == 0)
        #expect(throws: RuntimeError.self) { _ = try Self.rewritten(spec, "c2", sandbox) }
        #expect(ScratchSandbox.names(outside) == ["f0", "f1", "f2"])
        #expect(SandboxPaths.mountPoints(below: outside).isEmpty)
        sandbox.paths.unshareRootfs(containerID: "c1")
        // Only the share itself stays a mount point (SandboxPaths.create) until the sandbox goes.
        #expect(SandboxPaths.mountPoints(below: sandbox.paths.root) == [sandbox.paths.shared])
    }

    @Test func volumesAreSharedWritableOrReadOnlyAndSocketsAreDropped() throws {
        let sandbox = try ScratchSandbox()
        let data = sandbox.outside("data", files: 1)
        let config = sandbox.outside("config", files: 1)
        let socketPath = sandbox.base + "/api.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in socketPath.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        let spec = try Self.spec(mounts: """
            {"destination":"/data","type":"bind","source":"\(data)","options":["rbind","rw"]},
            {"destination":"/config","type":"bind","source":"\(config)","options":["rbind","ro"]},
            {"destination":"/run/api.sock","type":"bind","source":"\(socketPath)","options":["rbind"]},
            {"destination":"/missing","type":"bind","source":"\(sandbox.base)/nothing-here","options":["rbind"]}
            """)
        // A missing host path fails the container, as with runc.
        #expect(throws: RuntimeError.self) { _ = try Self.rewritten(spec, "c1", sandbox) }
        sandbox.paths.unshareRootfs(containerID: "c1")
        let present = try Self.spec(mounts: """
            {"destination":"/data","type":"bind","source":"\(data)","options":["rbind","rw"]},
            {"destination":"/config","type":"bind","source":"\(config)","options":["rbind","ro"]},
            {"destination":"/run/api.sock","type":"bind","source":"\(socketPath)","options":["rbind"]}
            """)
        let document = try Self.rewritten(present, "c1", sandbox)
        let mounts = try #require(document.mounts)
        #expect(mounts.map(\.destination) == ["/data", "/config"])
        let share = sandbox.paths.containerDirectory("c1") + "/mounts"
        #expect(FileManager.default.createFile(atPath: share + "/0-data/written", contents: Data("x".utf8)))
        #expect(FileManager.default.fileExists(atPath: data + "/written"))
        #expect(!FileManager.default.createFile(atPath: share + "/1-config/written", contents: Data("x".utf8)))
        #expect(ScratchSandbox.names(config) == ["f0"])
        sandbox.paths.unshareRootfs(containerID: "c1")
        // Only the share itself stays a mount point (SandboxPaths.create) until the sandbox goes.
        #expect(SandboxPaths.mountPoints(below: sandbox.paths.root) == [sandbox.paths.shared])
        #expect(ScratchSandbox.names(data) == ["f0", "written"])
    }

    @Test func podContainersJoinTheSandboxContainersNamespacesAndShm() throws {
        let sandbox = try ScratchSandbox()
        let namespaces = """
            {"type":"pid"},{"type":"ipc","path":"/proc/77/ns/ipc"},{"type":"uts","path":"/proc/77/ns/uts"},
            {"type":"mount"},{"type":"network","path":"/var/run/netns/cni-1234"}
            """
        let shm = """
            {"destination":"/dev/shm","type":"bind","source":"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/p/shm","options":["rbind","rw"]}
            """
        let spec = try Self.spec(mounts: shm, namespaces: namespaces)
        let pod = GuestSpec.Pod(sandboxGuestPID: 12, isCRI: true)
        let document = try Self.rewritten(spec, "c1", sandbox, pod: pod)
        #expect(document.linux?.namespaces == [
            OCINamespace(type: "pid"), OCINamespace(type: "ipc", path: "/proc/12/ns/ipc"),
            OCINamespace(type: "uts", path: "/proc/12/ns/uts"), OCINamespace(type: "mount"), OCINamespace(type: "network"),
        ])
        let mount = try #require(document.mounts?.first)
        #expect(mount.source == GuestSpec.guestPodShm)
        // Without a running sandbox container there is nothing to join; a host mount namespace never.
        #expect(throws: RuntimeError.self) {
            _ = try Self.rewritten(spec, "c2", sandbox, pod: GuestSpec.Pod(sandboxGuestPID: nil, isCRI: true))
        }
        let hostMount = try Self.spec(mounts: "", namespaces: #"{"type":"mount","path":"/proc/1/ns/mnt"}"#)
        #expect(throws: RuntimeError.self) { _ = try Self.rewritten(hostMount, "c3", sandbox, pod: pod) }
    }
}

@Suite struct SandboxIdentifierTests {
    @Test func sandboxAndContainerIDsMustBeIdentifiers() throws {
        #expect(throws: RuntimeError.self) { try SandboxPaths(sandboxDirectory: "/run/kata-swift", sandboxID: "../../etc") }
        #expect(throws: RuntimeError.self) { try SandboxPaths(sandboxDirectory: "/run/kata-swift", sandboxID: "a/b") }
        let sandbox = try ScratchSandbox()
        #expect(throws: RuntimeError.self) {
            try sandbox.paths.shareRootfs(containerID: "../../../escape", from: sandbox.rootfs, readOnly: false)
        }
        #expect(!FileManager.default.fileExists(atPath: sandbox.base + "/sandboxes/escape"))
    }
}
