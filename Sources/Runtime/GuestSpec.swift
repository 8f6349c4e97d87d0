// The OCI spec as the guest sees it (docs/kubernetes.md), a typed
// transform of the container's spec; VMSandbox encodes the result once for the agent:
// - `root.path` points into the shared directory (`/run/kata-containers/shared/containers/<cid>/rootfs`);
// - bind mounts of host files and directories reach the guest through the share
//   (SandboxPaths+Mounts), read-only where the mount says so; a pod's /dev/shm is the guest's
//   pod-wide tmpfs instead; sockets and devices, which cannot cross the VM boundary, are dropped;
// - namespace paths name host namespaces, which mean nothing in the guest: the network
//   namespace is the VM's own, and a pod's container joins the ipc, uts (and shared pid)
//   namespaces of the pod's sandbox container, by its guest pid.
// Exec processes are the container's `process` with the exec's own fields laid over it, as `ctr
// task exec` builds them.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import OCI
import Shim
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

enum GuestSpec {
    /// The pod a container belongs to, as far as the rewrite needs it.
    struct Pod {
        /// The guest pid of the pod sandbox container's init, for containers joining a CRI pod.
        var sandboxGuestPID: Int32?
        /// The container is part of a CRI pod (its sandbox or one of its containers).
        var isCRI: Bool
    }

    /// The guest's pod-wide /dev/shm (a tmpfs the agent mounts at CreateSandbox).
    static let guestPodShm = "/run/kata-containers/sandbox/shm"

    /// The container's spec as the agent gets it. Bind mounts are shared on the way (a mount that
    /// cannot be shared fails the container, as with runc).
    static func rewrite(_ spec: OCISpec, containerID: String, paths: SandboxPaths, pod: Pod, logger: Logger) throws(RuntimeError) -> OCISpec {
        var guest = spec
        guest.root = OCIRoot(path: SandboxPaths.guestRootfs(containerID), readonly: spec.root?.readonly)
        if let mounts = spec.mounts {
            guest.mounts = try rewriteMounts(mounts, containerID: containerID, paths: paths, pod: pod, logger: logger)
        }
        if let namespaces = spec.linux?.namespaces {
            guest.linux?.namespaces = try rewriteNamespaces(namespaces, pod: pod)
        }
        return guest
    }

    static func rewriteMounts(
        _ mounts: [OCIMount], containerID: String, paths: SandboxPaths, pod: Pod, logger: Logger
    ) throws(RuntimeError) -> [OCIMount] {
        var kept: [OCIMount] = []
        for (index, mount) in mounts.enumerated() {
            guard mount.isBind, let source = mount.source else {
                kept.append(mount)
                continue
            }
            var copy = mount
            if pod.isCRI && mount.destination == "/dev/shm" {
                copy.source = guestPodShm
                kept.append(copy)
                continue
            }
            let base = source.split(separator: "/").last.map(String.init) ?? "root"
            let name = "\(index)-" + (base == "." || base == ".." ? "mount" : base)
            let readOnly = mount.options?.contains("ro") == true
            do throws(RuntimeError) {
                _ = try paths.shareMount(containerID: containerID, name: name, source: source, readOnly: readOnly)
            } catch .system(_, let code) where code == ENOTSUP {
                logger.warning(
                    "container \(containerID): dropping bind mount \(source) -> \(mount.destination): only files and directories reach the guest")
                continue
            }
            copy.source = SandboxPaths.guestMount(containerID, name: name)
            kept.append(copy)
            logger.debug("container \(containerID): bind mount \(source) -> \(mount.destination) through the share")
        }
        return kept
    }

    static func rewriteNamespaces(_ namespaces: [OCINamespace], pod: Pod) throws(RuntimeError) -> [OCINamespace] {
        var out: [OCINamespace] = []
        for namespace in namespaces {
            guard let path = namespace.joinPath else {
                out.append(namespace)
                continue
            }
            switch namespace.type {
            case "network":
                out.append(OCINamespace(type: "network"))  // the pod's network namespace is the VM's
            case "ipc", "uts", "pid":
                guard let pid = pod.sandboxGuestPID else {
                    throw .invalidSpec(
                        "joining the \(namespace.type) namespace \(path): this container belongs to no running pod sandbox in the VM")
                }
                out.append(OCINamespace(type: namespace.type, path: "/proc/\(pid)/ns/\(namespace.type)"))
            default:
                throw .invalidSpec("joining the host \(namespace.type) namespace \(path) is not possible from a VM")
            }
        }
        return out
    }

    /// The exec's process: the container's `process`, with the exec's args, env, cwd and terminal
    /// laid over it (a console size only with a terminal).
    static func execProcess(_ exec: OCIProcess, containerSpec: OCISpec) throws(RuntimeError) -> OCIProcess {
        var process = containerSpec.process ?? exec
        if let args = exec.args { process.args = args }
        if let env = exec.env { process.env = env }
        process.cwd = exec.cwd
        process.terminal = exec.terminal ?? false
        if exec.terminal != true { process.consoleSize = nil }
        guard let args = process.args, !args.isEmpty else { throw .invalidSpec("exec process has no args") }
        return process
    }

    /// The JSON the agent decodes (CreateContainer's spec, ExecProcess's process).
    static func encode(_ value: some Encodable) throws(RuntimeError) -> [UInt8] {
        do {
            return try OCIJSON.encode(value)
        } catch {
            throw .invalidSpec("\(error)")
        }
    }
}
