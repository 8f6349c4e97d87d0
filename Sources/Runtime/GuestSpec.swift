// The OCI spec as the guest sees it (the helpers' contract): `root.path` points into the shared
// directory (`/run/kata-containers/shared/containers/<cid>/rootfs`), and bind mounts of host paths,
// which the guest cannot reach, are copied into `<shared>/containers/<cid>/mounts/` when they are
// small regular files (CRI's /etc/hosts, /etc/resolv.conf, /etc/hostname) and dropped otherwise.
// Exec processes are the container's `process` with the exec's own fields laid over it, as `ctr
// task exec` builds them.

import Foundation
import Logging
import Shim
import SystemSupport

enum GuestSpec {
    /// Largest bind-mounted file copied into the share.
    static let maxCopiedFile = 1 << 20

    /// The rewritten config.json for the agent.
    static func rewrite(_ spec: OCISpec, containerID: String, paths: SandboxPaths, logger: Logger) throws(RuntimeError) -> [UInt8] {
        guard var document = (try? JSONSerialization.jsonObject(with: Data(spec.json))) as? [String: Any] else {
            throw .invalidSpec("config.json is not a JSON object")
        }
        var root = document["root"] as? [String: Any] ?? [:]
        root["path"] = SandboxPaths.guestRootfs(containerID)
        document["root"] = root
        if let mounts = document["mounts"] as? [[String: Any]] {
            var kept: [[String: Any]] = []
            for (index, mount) in mounts.enumerated() {
                let options = mount["options"] as? [String] ?? []
                let isBind = (mount["type"] as? String) == "bind" || options.contains("bind") || options.contains("rbind")
                guard isBind, let source = mount["source"] as? String else {
                    kept.append(mount)
                    continue
                }
                let destination = mount["destination"] as? String ?? "?"
                if let guestSource = copyFile(source, index: index, containerID: containerID, paths: paths) {
                    var copy = mount
                    copy["source"] = guestSource
                    kept.append(copy)
                    logger.debug("container \(containerID): bind mount \(source) -> \(destination) copied into the share")
                } else {
                    logger.warning("container \(containerID): dropping bind mount \(source) -> \(destination): host path not reachable in the guest")
                }
            }
            document["mounts"] = kept
        }
        guard let data = try? JSONSerialization.data(withJSONObject: document) else {
            throw .invalidSpec("cannot encode the rewritten spec")
        }
        return Array(data)
    }

    /// Copies a small regular file into `mounts/`; returns its guest path, or nil. The share is
    /// guest-writable, so `mounts` must be a real directory (a symlink there is refused) and the
    /// file is created anew with O_EXCL|O_NOFOLLOW after unlinking whatever held its name.
    private static func copyFile(_ source: String, index: Int, containerID: String, paths: SandboxPaths) -> String? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: source),
              attributes[.type] as? FileAttributeType == .typeRegular,
              let size = attributes[.size] as? Int, size <= maxCopiedFile,
              let contents = FileManager.default.contents(atPath: source)
        else { return nil }
        let name = "\(index)-" + (source.split(separator: "/").last.map(String.init) ?? "file")
        do throws(Errno) {
            let container = try paths.openDirectory(paths.containerDirectory(containerID))
            let mounts = try SandboxPaths.makeDirectory("mounts", in: container)
            unlinkat(mounts.rawValue, name, 0)
            let fd = try retryingSyscall {
                openat(mounts.rawValue, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            }
            try FileDescriptor(owning: fd).writeAll(contents)
        } catch {
            return nil
        }
        return SandboxVM.guestSharedPath + "/containers/" + containerID + "/mounts/" + name
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
