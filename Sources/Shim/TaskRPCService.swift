// containerd.task.v2.Task on the wire: decodes each request into a TaskService call and encodes the
// answer. This is the one place where errors become ttrpc statuses (TaskError.from -> code).

import ContainerdAPI
import SwiftProtobuf
import TTRPC
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The ttrpc face of the task service.
public struct TaskRPCService: Containerd_Task_V2_TaskProvider {
    public let service: TaskService
    /// Reported by Connect.
    public static let version = "kata-swift 0.1 (containerd shim v2)"

    public init(service: TaskService) {
        self.service = service
    }

    /// Runs one request; any error leaves as a TTRPCError with containerd's code.
    private func handle<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as TTRPCError {
            throw error
        } catch {
            let mapped = TaskError.from(error)
            throw TTRPCError(TTRPCStatusCode(rawValue: mapped.code.rpcCode), mapped.message)
        }
    }

    private func key(_ id: String, _ execID: String) -> ProcessKey { ProcessKey(containerID: id, execID: execID) }

    public func create(_ request: Containerd_Task_V2_CreateTaskRequest, context: TTRPCCallContext) async throws
        -> Containerd_Task_V2_CreateTaskResponse
    {
        try await handle {
            var configPath: String?
            if request.hasOptions, request.options.typeURL.hasSuffix("runtimeoptions.v1.Options") {
                guard let options = try? Runtimeoptions_V1_Options(serializedBytes: request.options.value) else {
                    throw TaskError.invalidArgument("create \(request.id): runtime options do not decode")
                }
                configPath = options.configPath.isEmpty ? nil : options.configPath
            }
            let pid = try await service.create(.init(
                id: request.id, bundle: request.bundle,
                rootfs: request.rootfs.map { RootfsMount(type: $0.type, source: $0.source, options: $0.options) },
                stdio: StdioRequest(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr,
                                    terminal: request.terminal),
                checkpoint: request.checkpoint, configPath: configPath))
            return .with { $0.pid = pid }
        }
    }

    public func start(_ request: Containerd_Task_V2_StartRequest, context: TTRPCCallContext) async throws
        -> Containerd_Task_V2_StartResponse
    {
        try await handle {
            let pid = try await service.start(key(request.id, request.execID))
            return .with { $0.pid = pid }
        }
    }

    public func delete(_ request: Containerd_Task_V2_DeleteRequest, context: TTRPCCallContext) async throws
        -> Containerd_Task_V2_DeleteResponse
    {
        try await handle {
            let (pid, status) = try await service.delete(key(request.id, request.execID))
            return .with {
                $0.pid = pid
                $0.exitStatus = status.code
                $0.exitedAt = Google_Protobuf_Timestamp(date: status.exitedAt)
            }
        }
    }

    public func pids(_ request: Containerd_Task_V2_PidsRequest, context: TTRPCCallContext) async throws
        -> Containerd_Task_V2_PidsResponse
    {
        try await handle {
            let pids = try await service.pids(request.id)
            return .with { response in response.processes = pids.map { pid in .with { $0.pid = pid } } }
        }
    }

    public func pause(_ request: Containerd_Task_V2_PauseRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await handle {
            try await service.pause(request.id)
            return Google_Protobuf_Empty()
        }
    }

    public func resume(_ request: Containerd_Task_V2_ResumeRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await handle {
            try await service.resume(request.id)
            return Google_Protobuf_Empty()
        }
    }

    public func checkpoint(_ request: Containerd_Task_V2_CheckpointTaskRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await handle {
            throw TaskError.unimplemented(
                "kata-swift: checkpoint of \(request.id) is not supported (a VM sandbox has no CRIU checkpoint)")
        }
    }

    public func kill(_ request: Containerd_Task_V2_KillRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await handle {
            try await service.kill(key(request.id, request.execID), signal: request.signal, all: request.all)
            return Google_Protobuf_Empty()
        }
    }

    public func exec(_ request: Containerd_Task_V2_ExecProcessRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await handle {
            guard request.hasSpec else { throw TaskError.invalidArgument("exec \(request.execID): no process spec") }
            try await service.exec(
                key(request.id, request.execID), specJSON: Array(request.spec.value),
                stdio: StdioRequest(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr,
                                    terminal: request.terminal))
            return Google_Protobuf_Empty()
        }
    }

    public func resizePty(_ request: Containerd_Task_V2_ResizePtyRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await handle {
            try await service.resizePty(key(request.id, request.execID), width: request.width, height: request.height)
            return Google_Protobuf_Empty()
        }
    }

    public func closeIO(_ request: Containerd_Task_V2_CloseIORequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await handle {
            try await service.closeIO(key(request.id, request.execID), stdin: request.stdin)
            return Google_Protobuf_Empty()
        }
    }

    public func update(_ request: Containerd_Task_V2_UpdateTaskRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await handle {
            try await service.update(request.id, resources: Array(request.resources.value),
                                     annotations: request.annotations)
            return Google_Protobuf_Empty()
        }
    }

    public func wait(_ request: Containerd_Task_V2_WaitRequest, context: TTRPCCallContext) async throws
        -> Containerd_Task_V2_WaitResponse
    {
        try await handle {
            let status = try await service.wait(key(request.id, request.execID))
            return .with {
                $0.exitStatus = status.code
                $0.exitedAt = Google_Protobuf_Timestamp(date: status.exitedAt)
            }
        }
    }

    public func stats(_ request: Containerd_Task_V2_StatsRequest, context: TTRPCCallContext) async throws
        -> Containerd_Task_V2_StatsResponse
    {
        try await handle {
            let metrics = try await service.stats(request.id)
            var any = Google_Protobuf_Any()
            any.typeURL = metrics.typeURL
            any.value = Data(metrics.value)
            return .with { $0.stats = any }
        }
    }

    public func connect(_ request: Containerd_Task_V2_ConnectRequest, context: TTRPCCallContext) async throws
        -> Containerd_Task_V2_ConnectResponse
    {
        let (shimPID, taskPID) = await service.connect(request.id)
        return .with {
            $0.shimPid = shimPID
            $0.taskPid = taskPID
            $0.version = Self.version
        }
    }

    public func shutdown(_ request: Containerd_Task_V2_ShutdownRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        await service.shutdown(now: request.now)
        return Google_Protobuf_Empty()
    }

    public func state(_ request: Containerd_Task_V2_StateRequest, context: TTRPCCallContext) async throws
        -> Containerd_Task_V2_StateResponse
    {
        try await handle {
            let snapshot = try await service.state(key(request.id, request.execID))
            return .with {
                $0.id = request.id
                $0.execID = request.execID
                $0.bundle = snapshot.bundle
                $0.pid = snapshot.pid
                $0.stdin = snapshot.stdio.stdin
                $0.stdout = snapshot.stdio.stdout
                $0.stderr = snapshot.stdio.stderr
                $0.terminal = snapshot.stdio.terminal
                switch snapshot.state {
                case .created: $0.status = .created
                case .running: $0.status = .running
                case .paused: $0.status = .paused
                case .stopped, .deleted: $0.status = .stopped
                }
                if let exit = snapshot.state.exitStatus {
                    $0.exitStatus = exit.code
                    $0.exitedAt = Google_Protobuf_Timestamp(date: exit.exitedAt)
                }
            }
        }
    }
}
