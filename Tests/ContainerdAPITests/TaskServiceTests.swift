// The generated Task provider and client over a real Unix socket, and the exact bytes the client sends.
import ContainerdAPI
import Foundation
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization
import TTRPC
import Testing

typealias Empty = Google_Protobuf_Empty

/// A Task service that answers Connect and State and refuses the rest, as a shim would.
final class FakeTask: Containerd_Task_V2_TaskProvider {
    let seenNamespace = Mutex<String?>(nil)

    private func unsupported(_ method: String) -> TTRPCError {
        TTRPCError(.unimplemented, "\(method) not implemented")
    }

    func connect(_ request: Containerd_Task_V2_ConnectRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_ConnectResponse {
        seenNamespace.withLock { $0 = context.metadata.first(TTRPCMetadata.containerdNamespaceKey) }
        var response = Containerd_Task_V2_ConnectResponse()
        response.shimPid = 100
        response.taskPid = 101
        response.version = request.id
        return response
    }

    func state(_ request: Containerd_Task_V2_StateRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_StateResponse {
        guard request.id == "c1" else { throw TTRPCError(.notFound, "container \(request.id) not found") }
        var response = Containerd_Task_V2_StateResponse()
        response.id = request.id
        response.status = .running
        return response
    }

    func create(_ request: Containerd_Task_V2_CreateTaskRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_CreateTaskResponse { throw unsupported("Create") }
    func start(_ request: Containerd_Task_V2_StartRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_StartResponse { throw unsupported("Start") }
    func delete(_ request: Containerd_Task_V2_DeleteRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_DeleteResponse { throw unsupported("Delete") }
    func pids(_ request: Containerd_Task_V2_PidsRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_PidsResponse { throw unsupported("Pids") }
    func pause(_ request: Containerd_Task_V2_PauseRequest, context: TTRPCCallContext) async throws -> Empty { throw unsupported("Pause") }
    func resume(_ request: Containerd_Task_V2_ResumeRequest, context: TTRPCCallContext) async throws -> Empty { throw unsupported("Resume") }
    func checkpoint(_ request: Containerd_Task_V2_CheckpointTaskRequest, context: TTRPCCallContext) async throws -> Empty { throw unsupported("Checkpoint") }
    func kill(_ request: Containerd_Task_V2_KillRequest, context: TTRPCCallContext) async throws -> Empty { throw unsupported("Kill") }
    func exec(_ request: Containerd_Task_V2_ExecProcessRequest, context: TTRPCCallContext) async throws -> Empty { throw unsupported("Exec") }
    func resizePty(_ request: Containerd_Task_V2_ResizePtyRequest, context: TTRPCCallContext) async throws -> Empty { throw unsupported("ResizePty") }
    func closeIO(_ request: Containerd_Task_V2_CloseIORequest, context: TTRPCCallContext) async throws -> Empty { throw unsupported("CloseIO") }
    func update(_ request: Containerd_Task_V2_UpdateTaskRequest, context: TTRPCCallContext) async throws -> Empty { throw unsupported("Update") }
    func wait(_ request: Containerd_Task_V2_WaitRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_WaitResponse { throw unsupported("Wait") }
    func stats(_ request: Containerd_Task_V2_StatsRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_StatsResponse { throw unsupported("Stats") }
    func shutdown(_ request: Containerd_Task_V2_ShutdownRequest, context: TTRPCCallContext) async throws -> Empty { throw unsupported("Shutdown") }
}

/// A fake containerd events service recording what the shim forwards.
final class EventSink: Containerd_Services_Events_Ttrpc_V1_EventsProvider {
    let received = Mutex<[Containerd_Services_Events_Ttrpc_V1_Envelope]>([])

    func forward(_ request: Containerd_Services_Events_Ttrpc_V1_ForwardRequest, context: TTRPCCallContext) async throws -> Empty {
        received.withLock { $0.append(request.envelope) }
        return Empty()
    }
}

func temporarySocketPath() throws -> (directory: String, path: String) {
    var template = Array("/tmp/ttrpc-api-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw TTRPCError(.internal, "mkdtemp failed")
    }
    let directory = String(cString: made)
    return (directory, directory + "/s.sock")
}

var defaultNamespace: TTRPCCallOptions {
    TTRPCCallOptions(metadata: [TTRPCMetadata.containerdNamespaceKey: "default"])
}

@Suite(.serialized) struct TaskServiceTests {
    @Test func typedTaskServiceOverSocket() async throws {
        let (directory, path) = try temporarySocketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = TTRPCServer()
        let task = FakeTask()
        server.register(task)
        try await server.listen(unixSocketPath: path)
        let client = Containerd_Task_V2_TaskClient(try await TTRPCClient.connect(unixSocketPath: path))

        var connect = Containerd_Task_V2_ConnectRequest()
        connect.id = "test1"
        let connected = try await client.connect(connect, options: defaultNamespace)
        #expect(connected.shimPid == 100 && connected.taskPid == 101 && connected.version == "test1")
        #expect(task.seenNamespace.withLock { $0 } == "default")

        var state = Containerd_Task_V2_StateRequest()
        state.id = "c1"
        #expect(try await client.state(state).status == .running)
        state.id = "nope"
        do {
            _ = try await client.state(state)
            Issue.record("State of a missing container succeeded")
        } catch let error as TTRPCError {
            #expect(error.code == .notFound)
        }
        do {
            _ = try await client.pause(Containerd_Task_V2_PauseRequest())
            Issue.record("Pause succeeded")
        } catch let error as TTRPCError {
            #expect(error == TTRPCError(.unimplemented, "Pause not implemented"))
        }
        await client.connection.close()
        await server.close()
    }

    @Test func eventsForwardOverSocket() async throws {
        let (directory, path) = try temporarySocketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = TTRPCServer()
        let sink = EventSink()
        server.register(sink)
        try await server.listen(unixSocketPath: path)
        let events = Containerd_Services_Events_Ttrpc_V1_EventsClient(try await TTRPCClient.connect(unixSocketPath: path))
        var exit = Containerd_Events_TaskExit()
        exit.containerID = "c1"
        exit.exitStatus = 137
        _ = try await events.forward(
            try Containerd_Services_Events_Ttrpc_V1_ForwardRequest(event: exit, namespace: "default"),
            options: TTRPCCallOptions(timeout: .seconds(5)))
        let got = sink.received.withLock { $0 }
        #expect(got.count == 1)
        #expect(got.first?.topic == "/tasks/exit")
        #expect(got.first?.event.typeURL == "containerd.events.TaskExit")
        await events.connection.close()
        await server.close()
    }

    /// The generated client sends exactly the frame containerd sends for Connect{id:"test1"}.
    @Test func clientSendsContainerdGoldenConnectFrame() async throws {
        let (directory, path) = try temporarySocketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let captured = ByteCapture()
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CaptureHandler(captured))
                }
            }
            .bind(unixDomainSocketPath: path).get()
        let client = Containerd_Task_V2_TaskClient(try await TTRPCClient.connect(unixSocketPath: path))
        var connect = Containerd_Task_V2_ConnectRequest()
        connect.id = "test1"
        let call = Task { try await client.connect(connect, options: defaultNamespace) }
        let expected = Array(
            "00000052000000010100" + "0a17" + hex("containerd.task.v2.Task") + "1207" + hex("Connect") + "1a070a05" + hex("test1")
                + "2a250a1a" + hex("containerd-namespace-ttrpc") + "1207" + hex("default"))
        let end = ContinuousClock.now + .seconds(5)
        while captured.bytes.withLock({ $0.count }) < 92, ContinuousClock.now < end {
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(captured.bytes.withLock { $0 }.map { String(format: "%02x", $0) }.joined() == String(expected))
        call.cancel()
        _ = try? await call.value
        await client.connection.close()
        try await listener.close()
    }

    /// containerd's Connect frame, byte for byte, gets the expected response frame from a registered provider.
    @Test func serverAnswersContainerdGoldenConnectFrame() async throws {
        let (directory, path) = try temporarySocketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = TTRPCServer()
        server.register(FakeTask())
        try await server.listen(unixSocketPath: path)
        let captured = ByteCapture()
        let peer = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CaptureHandler(captured))
                }
            }
            .connect(unixDomainSocketPath: path).get()
        let request = "00000052000000010100" + "0a17" + hex("containerd.task.v2.Task") + "1207" + hex("Connect")
            + "1a070a05" + hex("test1") + "2a250a1a" + hex("containerd-namespace-ttrpc") + "1207" + hex("default")
        try await peer.writeAndFlush(ByteBuffer(bytes: bytes(fromHex: request)))
        // Response{payload: ConnectResponse{shim_pid: 100, task_pid: 101, version: "test1"}} on stream 1.
        let expected = "0000000d000000010200" + "120b" + "0864" + "1065" + "1a05" + hex("test1")
        let end = ContinuousClock.now + .seconds(5)
        while captured.bytes.withLock({ $0.count }) < 23, ContinuousClock.now < end {
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(captured.bytes.withLock { $0 }.map { String(format: "%02x", $0) }.joined() == expected)
        try await peer.close()
        await server.close()
    }
}

func bytes(fromHex text: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        result.append(UInt8(text[index..<next], radix: 16) ?? 0)
        index = next
    }
    return result
}

func hex(_ text: String) -> String {
    text.utf8.map { String(format: "%02x", $0) }.joined()
}

final class ByteCapture: Sendable {
    let bytes = Mutex<[UInt8]>([])
}

final class CaptureHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let capture: ByteCapture

    init(_ capture: ByteCapture) {
        self.capture = capture
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        capture.bytes.withLock { $0 += buffer.readableBytesView }
    }
}
