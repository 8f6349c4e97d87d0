// The OCI spec as the guest sees it (the helpers' contract, docs/kubernetes.md):
// - `root.path` points into the shared directory (`/run/kata-containers/shared/containers/<cid>/rootfs`);
// - bind mounts of host files and directories reach the guest through the share
//   (SandboxPaths+Mounts), read-only where the mount says so; a pod's /dev/shm is the guest's
//   pod-wide tmpfs instead; sockets and devices, which cannot cross the VM boundary, are dropped;
// - namespace paths name host namespaces, which mean nothing in the guest: the network
//   namespace is the VM's own, and a pod's container joins the ipc, uts (and shared pid)
//   namespaces of the pod's sandbox container, by its guest pid.
// Exec processes are the container's `process` with the exec's own fields laid over it, as `ctr
// task exec` builds them.

import Foundation
import Logging
import Shim
import SystemSupport

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

    /// The rewritten config.json for the agent.
    static func rewrite(_ spec: OCISpec, containerID: String, paths: SandboxPaths, pod: Pod, logger: Logger) throws(RuntimeError) -> [UInt8] {
        guard var document = (try? JSONSerialization.jsonObject(with: Data(spec.json))) as? [String: Any] else {
            throw .invalidSpec("config.json is not a JSON object")
        }
        var root = document["root"] as? [String: Any] ?? [:]
        root["path"] = SandboxPaths.guestRootfs(containerID)
        document["root"] = root
        if let mounts = document["mounts"] as? [[String: Any]] {
            document["mounts"] = try rewriteMounts(mounts, containerID: containerID, paths: paths, pod: pod, logger: logger)
        }
        if var linux = document["linux"] as? [String: Any], let namespaces = linux["namespaces"] as? [[String: Any]] {
            linux["namespaces"] = try rewriteNamespaces(namespaces, pod: pod)
            document["linux"] = linux
        }
        guard let data = try? JSONSerialization.data(withJSONObject: document) else {
            throw .invalidSpec("cannot encode the rewritten spec")
        }
        return Array(data)
    }

    static func rewriteMounts(
        _ mounts: [[String: Any]], containerID: String, paths: SandboxPaths, pod: Pod, logger: Logger
    ) throws(RuntimeError) -> [[String: Any]] {
        var kept: [[String: Any]] = []
        for (index, mount) in mounts.enumerated() {
            let options = mount["options"] as? [String] ?? []
            let isBind = (mount["type"] as? String) == "bind" || options.contains("bind") || options.contains("rbind")
            guard isBind, let source = mount["source"] as? String else {
                kept.append(mount)
                continue
            }
            let destination = mount["destination"] as? String ?? "?"
            var copy = mount
            if pod.isCRI && destination == "/dev/shm" {
                copy["source"] = guestPodShm
                kept.append(copy)
                continue
            }
            let base = source.split(separator: "/").last.map(String.init) ?? "root"
            let name = "\(index)-" + (base == "." || base == ".." ? "mount" : base)
            do throws(RuntimeError) {
                _ = try paths.shareMount(containerID: containerID, name: name, source: source, readOnly: options.contains("ro"))
            } catch .system(_, let code) where code == ENOTSUP {
                logger.warning("container \(containerID): dropping bind mount \(source) -> \(destination): only files and directories reach the guest")
                continue
            }
            copy["source"] = SandboxPaths.guestMount(containerID, name: name)
            kept.append(copy)
            logger.debug("container \(containerID): bind mount \(source) -> \(destination) through the share")
        }
        return kept
    }

    static func rewriteNamespaces(_ namespaces: [[String: Any]], pod: Pod) throws(RuntimeError) -> [[String: Any]] {
        var out: [[String: Any]] = []
        for namespace in namespaces {
            var copy = namespace
            let type = namespace["type"] as? String ?? ""
            guard let path = namespace["path"] as? String, !path.isEmpty else {
                out.append(copy)
                continue
            }
            switch type {
            case "network":
                copy["path"] = nil  // the pod's network namespace is the VM's
            case "ipc", "uts", "pid":
                guard let pid = pod.sandboxGuestPID else {
                    throw .invalidSpec("joining the \(type) namespace \(path): this container belongs to no running pod sandbox in the VM")
                }
                copy["path"] = "/proc/\(pid)/ns/\(type)"
            default:
                throw .invalidSpec("joining the host \(type) namespace \(path) is not possible from a VM")
            }
            out.append(copy)
        }
        return out
    }

    /// The exec's process JSON: the container's `process`, with the exec's fields laid over it.
    static func execProcess(_ exec: OCIProcess, containerSpec: OCISpec) throws(RuntimeError) -> [UInt8] {
        let document = (try? JSONSerialization.jsonObject(with: Data(containerSpec.json))) as? [String: Any]
        var process = document?["process"] as? [String: Any] ?? [:]
        if let args = exec.args { process["args"] = args }
        if let env = exec.env { process["env"] = env }
        if let cwd = exec.cwd { process["cwd"] = cwd }
        process["terminal"] = exec.terminal ?? false
        if exec.terminal != true { process["consoleSize"] = nil }
        guard let args = process["args"] as? [String], !args.isEmpty else { throw .invalidSpec("exec process has no args") }
        guard let data = try? JSONSerialization.data(withJSONObject: process) else {
            throw .invalidSpec("cannot encode the exec process")
        }
        return Array(data)
    }
}
