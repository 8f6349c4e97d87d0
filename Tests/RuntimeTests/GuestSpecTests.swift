// The host-to-guest rewrite as a typed transform: what changes (root, /dev/shm, namespace paths,
// an exec's fields) and what passes through untouched. Bind mounts through the share, which need
// root and real files, are in SandboxPathsTests.

import Foundation
import Logging
import OCI
import Shim
import Testing
@testable import Runtime

@Suite struct GuestSpecTests {
    static let logger = Logger(label: "test")
    static let paths: SandboxPaths = {
        do { return try SandboxPaths(sandboxDirectory: "/nonexistent/sandboxes", sandboxID: "pod1") } catch { fatalError("\(error)") }
    }()

    static func container(namespaces: [OCINamespace], mounts: [OCIMount] = [], role: String? = "container") -> OCISpec {
        OCISpec(
            ociVersion: "1.1.0",
            process: OCIProcess(
                terminal: true, consoleSize: OCIConsoleSize(height: 24, width: 80), user: OCIUser(uid: 1000, gid: 1000),
                args: ["sh"], env: ["PATH=/bin"], cwd: "/home", capabilities: OCICapabilities(all: ["CAP_KILL"]),
                oomScoreAdj: 500),
            root: OCIRoot(path: "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/rootfs", readonly: true),
            hostname: "pod", mounts: mounts,
            annotations: role.map { [OCISpec.containerTypeAnnotation: $0, OCISpec.sandboxIDAnnotation: "p"] },
            linux: OCILinux(
                namespaces: namespaces, cgroupsPath: "kubepods-burstable-pod1.slice:cri-containerd:c1",
                resources: OCIResources(memory: .init(limit: -1), cpu: .init(shares: 2)),
                seccomp: OCISeccomp(defaultAction: "SCMP_ACT_ERRNO", syscalls: [.init(names: ["read"], action: "SCMP_ACT_ALLOW")]),
                maskedPaths: ["/proc/kcore"]))
    }

    static func rewrite(_ spec: OCISpec, pid: Int32? = 42, cri: Bool = true) throws -> OCISpec {
        try GuestSpec.rewrite(
            spec, containerID: "c1", paths: paths, pod: GuestSpec.Pod(sandboxGuestPID: pid, isCRI: cri), logger: logger)
    }

    @Test func rootMovesIntoTheShareAndTheRestPassesThrough() throws {
        let spec = Self.container(namespaces: [OCINamespace(type: "mount"), OCINamespace(type: "pid")], mounts: [
            OCIMount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            OCIMount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "mode=755"]),
        ])
        let guest = try Self.rewrite(spec)
        #expect(guest.root == OCIRoot(path: "/run/kata-containers/shared/containers/c1/rootfs", readonly: true))
        var expected = spec
        expected.root = guest.root
        #expect(guest == expected)
    }

    @Test func podShmIsTheGuestsTmpfsAndNamespacePathsAreTheSandboxContainers() throws {
        let spec = Self.container(
            namespaces: [
                OCINamespace(type: "pid", path: "/proc/77/ns/pid"), OCINamespace(type: "ipc", path: "/proc/77/ns/ipc"),
                OCINamespace(type: "uts", path: "/proc/77/ns/uts"), OCINamespace(type: "mount"),
                OCINamespace(type: "network", path: "/var/run/netns/cni-1234"), OCINamespace(type: "cgroup", path: ""),
            ],
            mounts: [OCIMount(destination: "/dev/shm", type: "bind", source: "/run/containerd/sandboxes/p/shm", options: ["rbind", "rw"])])
        let guest = try Self.rewrite(spec, pid: 12)
        #expect(guest.linux?.namespaces == [
            OCINamespace(type: "pid", path: "/proc/12/ns/pid"), OCINamespace(type: "ipc", path: "/proc/12/ns/ipc"),
            OCINamespace(type: "uts", path: "/proc/12/ns/uts"), OCINamespace(type: "mount"), OCINamespace(type: "network"),
            OCINamespace(type: "cgroup", path: ""),
        ])
        #expect(guest.mounts == [OCIMount(destination: "/dev/shm", type: "bind", source: GuestSpec.guestPodShm, options: ["rbind", "rw"])])
        // Encoded once for the agent: the network namespace has no path key at all.
        let json = String(decoding: try GuestSpec.encode(guest), as: UTF8.self)
        #expect(json.contains(#"{"type":"network"}"#))
        #expect(try OCISpec.decode(Array(json.utf8)) == guest)
    }

    @Test func joiningNeedsARunningSandboxAndNeverAHostMountNamespace() throws {
        let ipc = Self.container(namespaces: [OCINamespace(type: "ipc", path: "/proc/77/ns/ipc")])
        #expect(throws: RuntimeError.self) { _ = try Self.rewrite(ipc, pid: nil) }
        let hostMount = Self.container(namespaces: [OCINamespace(type: "mount", path: "/proc/1/ns/mnt")])
        #expect(throws: RuntimeError.self) { _ = try Self.rewrite(hostMount) }
        let hostUser = Self.container(namespaces: [OCINamespace(type: "user", path: "/proc/1/ns/user")])
        #expect(throws: RuntimeError.self) { _ = try Self.rewrite(hostUser) }
        // A network namespace path is dropped for a container of its own too (`ctr run --with-ns`).
        let single = Self.container(namespaces: [OCINamespace(type: "network", path: "/var/run/netns/x")], role: nil)
        #expect(try Self.rewrite(single, pid: nil, cri: false).linux?.namespaces == [OCINamespace(type: "network")])
    }

    @Test func execLaysItsFieldsOverTheContainersProcess() throws {
        let spec = Self.container(namespaces: [])
        let exec = OCIProcess(args: ["ls", "-l"], env: ["A=b"], cwd: "/tmp")
        let process = try GuestSpec.execProcess(exec, containerSpec: spec)
        var expected = try #require(spec.process)
        expected.args = ["ls", "-l"]
        expected.env = ["A=b"]
        expected.cwd = "/tmp"
        expected.terminal = false
        expected.consoleSize = nil
        #expect(process == expected)
        // With a terminal the console size stays; without args or env the container's are kept.
        let tty = try GuestSpec.execProcess(OCIProcess(terminal: true, cwd: "/"), containerSpec: spec)
        #expect(tty.args == ["sh"] && tty.env == ["PATH=/bin"] && tty.consoleSize == OCIConsoleSize(height: 24, width: 80))
        #expect(tty.user == OCIUser(uid: 1000, gid: 1000) && tty.terminal == true)
        #expect(throws: RuntimeError.self) {
            _ = try GuestSpec.execProcess(OCIProcess(args: []), containerSpec: OCISpec())
        }
    }
}
