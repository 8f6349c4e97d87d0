// Delivers events to containerd: containerd.services.events.ttrpc.v1.Events/Forward on the socket
// in TTRPC_ADDRESS, each an Envelope whose Any carries the BARE type name
// (`containerd.events.TaskExit`). Reconnects whenever the connection has gone away; the EventQueue
// retries a failed send.

import ContainerdAPI
import SwiftProtobuf
import Synchronization
import TTRPC
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An EventSink speaking ttrpc to containerd.
public actor EventForwarder: EventSink {
    private let socketPath: String
    private var client: TTRPCClient?
    private let timeout: Duration

    /// `address` is TTRPC_ADDRESS (a socket path; a `unix://` prefix is accepted).
    public init(address: String, timeout: Duration = .seconds(5)) {
        socketPath = address.hasPrefix("unix://") ? String(address.dropFirst("unix://".count)) : address
        self.timeout = timeout
    }

    public func send(_ event: TaskEvent, namespace: String, timestamp: Date) async throws {
        let request = try Self.forwardRequest(for: event, namespace: namespace, timestamp: timestamp)
        let client: TTRPCClient
        if let existing = self.client, existing.isActive {
            client = existing
        } else {
            await self.client?.close()
            self.client = nil
            client = try await TTRPCClient.connect(unixSocketPath: socketPath)
            self.client = client
        }
        do {
            _ = try await Containerd_Services_Events_Ttrpc_V1_EventsClient(client)
                .forward(request, options: TTRPCCallOptions(timeout: timeout))
        } catch {
            await client.close()
            self.client = nil
            throw error
        }
    }

    public func close() async {
        await client?.close()
        client = nil
    }

    /// The Forward request for `event`.
    public static func forwardRequest(for event: TaskEvent, namespace: String, timestamp: Date) throws
        -> Containerd_Services_Events_Ttrpc_V1_ForwardRequest
    {
        func stamp(_ date: Date) -> Google_Protobuf_Timestamp { Google_Protobuf_Timestamp(date: date) }
        switch event {
        case .create(let containerID, let bundle, let rootfs, let stdio, let pid):
            return try .init(event: Containerd_Events_TaskCreate.with {
                $0.containerID = containerID
                $0.bundle = bundle
                $0.rootfs = rootfs.map { mount in .with {
                    $0.type = mount.type
                    $0.source = mount.source
                    $0.options = mount.options
                } }
                $0.io = .with {
                    $0.stdin = stdio.stdin
                    $0.stdout = stdio.stdout
                    $0.stderr = stdio.stderr
                    $0.terminal = stdio.terminal
                }
                $0.pid = pid
            }, namespace: namespace, timestamp: timestamp)
        case .start(let containerID, let pid):
            return try .init(event: Containerd_Events_TaskStart.with {
                $0.containerID = containerID
                $0.pid = pid
            }, namespace: namespace, timestamp: timestamp)
        case .exit(let containerID, let id, let pid, let status):
            return try .init(event: Containerd_Events_TaskExit.with {
                $0.containerID = containerID
                $0.id = id
                $0.pid = pid
                $0.exitStatus = status.code
                $0.exitedAt = stamp(status.exitedAt)
            }, namespace: namespace, timestamp: timestamp)
        case .delete(let containerID, let pid, let status):
            return try .init(event: Containerd_Events_TaskDelete.with {
                $0.containerID = containerID
                $0.id = containerID
                $0.pid = pid
                $0.exitStatus = status.code
                $0.exitedAt = stamp(status.exitedAt)
            }, namespace: namespace, timestamp: timestamp)
        case .execAdded(let containerID, let execID):
            return try .init(event: Containerd_Events_TaskExecAdded.with {
                $0.containerID = containerID
                $0.execID = execID
            }, namespace: namespace, timestamp: timestamp)
        case .execStarted(let containerID, let execID, let pid):
            return try .init(event: Containerd_Events_TaskExecStarted.with {
                $0.containerID = containerID
                $0.execID = execID
                $0.pid = pid
            }, namespace: namespace, timestamp: timestamp)
        case .paused(let containerID):
            return try .init(event: Containerd_Events_TaskPaused.with { $0.containerID = containerID },
                             namespace: namespace, timestamp: timestamp)
        case .resumed(let containerID):
            return try .init(event: Containerd_Events_TaskResumed.with { $0.containerID = containerID },
                             namespace: namespace, timestamp: timestamp)
        case .oom(let containerID):
            return try .init(event: Containerd_Events_TaskOOM.with { $0.containerID = containerID },
                             namespace: namespace, timestamp: timestamp)
        }
    }
}

/// Logs and drops events (a daemon started without TTRPC_ADDRESS, which containerd never does).
public struct DroppingEventSink: EventSink {
    public init() {}

    public func send(_ event: TaskEvent, namespace: String, timestamp: Date) async throws {}
}
