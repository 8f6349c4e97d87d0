// A warm sandbox runs one throwaway container before it is offered to pods
// (docs/warm-sandboxes.md, "Warm-up"). A freshly booted agent has only answered health checks: the
// first CreateContainer, StartContainer, WaitProcess and RemoveContainer would each page their
// code in from the guest's disk and pay the Swift runtime's first-use costs, all on the pod's
// start path. Here they are paid while nobody waits.

import AgentAPI
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import TTRPC

enum GuestWarmUp {
    /// Gone before any pod can claim the VM, so it never meets a pod's container ids.
    static let containerID = "kata-swift-warm-up"

    /// Where the guest mounts the container's root: a small tmpfs of its own (a storage of the
    /// request, unmounted by RemoveContainer), into which the guest's /bin/busybox is bound.
    static let rootfs = "/run/kata-swift-warm-up"

    /// `/bin/busybox true` in new namespaces, with the mounts and masks a container's spec
    /// usually has.
    static let spec = """
        {"ociVersion":"1.1.0",
         "process":{"user":{"uid":0,"gid":0},"args":["/bin/busybox","true"],"env":["PATH=/bin"],"cwd":"/",
          "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]},
          "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true},
         "root":{"path":"\(rootfs)","readonly":false},
         "mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]},
          {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
          {"destination":"/bin/busybox","type":"bind","source":"/bin/busybox","options":["rbind","ro"]}],
         "linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}],
          "maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"]}}
        """

    /// Creates, starts, waits for and removes the container. Never throws: a warm sandbox whose
    /// warm-up failed still serves pods (it only starts them a little slower); the failure is
    /// logged, and the container removed if it was created.
    static func run(_ agent: Kata_Agent_V1_AgentServiceClient, for subject: String, logger: Logger) async {
        let clock = ContinuousClock()
        let started = clock.now
        let options = TTRPCCallOptions(timeout: .seconds(30))
        var created = false
        do {
            _ = try await agent.createContainer(.with {
                $0.containerID = containerID
                $0.ociSpecJson = Data(spec.utf8)
                $0.storages = [.with {
                    $0.driver = "local"
                    $0.source = "kata-swift-warm-up"
                    $0.fstype = "tmpfs"
                    $0.options = ["nosuid", "nodev", "mode=0755", "size=1m"]
                    $0.mountPoint = rootfs
                }]
            }, options: options)
            created = true
            _ = try await agent.startContainer(.with { $0.containerID = containerID }, options: options)
            let status = try await agent.waitProcess(.with { $0.containerID = containerID }, options: options).status
            _ = try await agent.removeContainer(.with { $0.containerID = containerID }, options: options)
            created = false
            guard status == 0 else { throw TTRPCError(.unknown, "the throwaway container exited with status \(status)") }
            logger.info("\(subject): guest warmed up by a throwaway container in \(started.duration(to: clock.now))")
        } catch {
            logger.warning("\(subject): warm-up container: \(error); it serves pods all the same")
            if created { _ = try? await agent.removeContainer(.with { $0.containerID = containerID }, options: options) }
        }
    }
}
