// CreateSandbox, DestroySandbox, SetGuestDateTime, ReseedRandomDev.
import AgentAPI
import CGuest
import Glibc
import SwiftProtobuf
import TTRPC

extension AgentService {
    func createSandbox(_ request: Kata_Agent_V1_CreateSandboxRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            let engine = self.engine
            let claimed = engine.sandbox.withLock { s -> Bool in
                guard case .none = s else { return false }
                s = .created(id: request.sandboxID, storageMounts: [])
                return true
            }
            guard claimed else { throw AgentError.invalidState("the sandbox already exists") }
            let started = ContinuousClock.now
            do {
                if !request.hostname.isEmpty {
                    guard request.hostname.utf8.count <= 64, !request.hostname.utf8.contains(0) else {
                        throw AgentError.invalidRequest(field: "hostname", reason: "must be 1 to 64 bytes without NUL")
                    }
                    if engine.options.ownsMachine {
                        guard sethostname(request.hostname, request.hostname.utf8.count) == 0 else {
                            throw AgentError.system(operation: "sethostname", errno: errno)
                        }
                    }
                }
                let mounted = try StorageMounts.mountAll(request.storages, field: "storages")
                engine.sandbox.withLock { $0 = .created(id: request.sandboxID, storageMounts: mounted) }
                log.info("sandbox \(request.sandboxID) created (\(mounted.count) storages) in \(started.duration(to: .now))")
            } catch {
                engine.sandbox.withLock { $0 = .none }
                throw error
            }
            return Google_Protobuf_Empty()
        }
    }

    func destroySandbox(_ request: Kata_Agent_V1_DestroySandboxRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            for record in await engine.registry.all() {
                try? await removeContainer(id: record.id, timeoutSeconds: 0)
            }
            let mounts = engine.sandbox.withLock { s -> [String] in
                defer { s = .none }
                if case .created(_, let m) = s { return m }
                return []
            }
            StorageMounts.unmountAll(mounts)
            return Google_Protobuf_Empty()
        }
    }

    func setGuestDateTime(_ request: Kata_Agent_V1_SetGuestDateTimeRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            guard request.usec >= 0, request.usec < 1_000_000, request.sec >= 0 else {
                throw AgentError.invalidRequest(field: "usec", reason: "sec must be >= 0 and usec in 0..<1000000")
            }
            guard engine.options.ownsMachine else {
                throw AgentError.invalidState("this agent does not own the machine's clock (not the guest's PID 1)")
            }
            var ts = timespec(tv_sec: Int(request.sec), tv_nsec: Int(request.usec) * 1000)
            guard clock_settime(CLOCK_REALTIME, &ts) == 0 else {
                throw AgentError.system(operation: "clock_settime", errno: errno)
            }
            return Google_Protobuf_Empty()
        }
    }

    /// The host's bytes into the kernel's RNG, and a reseed: a VM restored from a saved template
    /// shares the template's RNG state until then (docs/snapshots.md). Kata's factory calls it
    /// the same way when it hands out a templated VM.
    func reseedRandomDev(_ request: Kata_Agent_V1_ReseedRandomDevRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await rpc(context) {
            guard (1...4096).contains(request.data.count) else {
                throw AgentError.invalidRequest(field: "data", reason: "\(request.data.count) bytes; 1...4096 are taken")
            }
            guard engine.options.ownsMachine else {
                throw AgentError.invalidState("this agent does not own the machine's RNG (not the guest's PID 1)")
            }
            let fd = open("/dev/random", O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw AgentError.system(operation: "open /dev/random", errno: errno) }
            defer { close(fd) }
            let bytes = [UInt8](request.data)
            let rc = bytes.withUnsafeBufferPointer { ks_reseed_random(fd, $0.baseAddress, Int32($0.count)) }
            guard rc == 0 else { throw AgentError.system(operation: "RNDADDENTROPY/RNDRESEEDCRNG", errno: -rc) }
            return Google_Protobuf_Empty()
        }
    }
}
