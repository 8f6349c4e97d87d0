// Helpers for the events a shim publishes to containerd (Events/Forward on TTRPC_ADDRESS).
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A containerd event message and the topic it is published under.
public protocol ContainerdEvent: SwiftProtobuf.Message {
    /// e.g. `/tasks/exit`.
    static var topic: String { get }
}

extension Containerd_Events_TaskCreate: ContainerdEvent { public static var topic: String { "/tasks/create" } }
extension Containerd_Events_TaskStart: ContainerdEvent { public static var topic: String { "/tasks/start" } }
extension Containerd_Events_TaskDelete: ContainerdEvent { public static var topic: String { "/tasks/delete" } }
extension Containerd_Events_TaskExit: ContainerdEvent { public static var topic: String { "/tasks/exit" } }
extension Containerd_Events_TaskOOM: ContainerdEvent { public static var topic: String { "/tasks/oom" } }
extension Containerd_Events_TaskExecAdded: ContainerdEvent { public static var topic: String { "/tasks/exec-added" } }
extension Containerd_Events_TaskExecStarted: ContainerdEvent { public static var topic: String { "/tasks/exec-started" } }
extension Containerd_Events_TaskPaused: ContainerdEvent { public static var topic: String { "/tasks/paused" } }
extension Containerd_Events_TaskResumed: ContainerdEvent { public static var topic: String { "/tasks/resumed" } }
extension Containerd_Events_TaskCheckpointed: ContainerdEvent { public static var topic: String { "/tasks/checkpointed" } }

extension Google_Protobuf_Any {
    /// An Any as containerd's typeurl expects it: `type_url` is the bare message name
    /// (`containerd.events.TaskExit`), without the `type.googleapis.com/` prefix that
    /// `Google_Protobuf_Any(message:)` adds.
    public init(containerdTypeURLFor message: some SwiftProtobuf.Message) throws {
        self.init()
        typeURL = type(of: message).protoMessageName
        value = try message.serializedData()
    }
}

extension Containerd_Services_Events_Ttrpc_V1_ForwardRequest {
    /// The request that publishes `event` in `namespace` under its topic, stamped `timestamp`.
    public init(event: some ContainerdEvent, namespace: String, timestamp: Date = Date()) throws {
        self.init()
        var envelope = Containerd_Services_Events_Ttrpc_V1_Envelope()
        envelope.timestamp = Google_Protobuf_Timestamp(date: timestamp)
        envelope.namespace = namespace
        envelope.topic = type(of: event).topic
        envelope.event = try Google_Protobuf_Any(containerdTypeURLFor: event)
        self.envelope = envelope
    }
}
