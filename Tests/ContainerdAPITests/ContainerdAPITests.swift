// The generated containerd API: messages, the event Any helper, and the typed Task service over a real socket.
import ContainerdAPI
import Foundation
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization
import TTRPC
import Testing

@Suite struct MessageTests {
    @Test func createTaskRequestRoundTrips() throws {
        var mount = Containerd_Types_Mount()
        mount.type = "overlay"
        mount.source = "overlay"
        mount.options = ["lowerdir=/a", "upperdir=/b", "workdir=/c"]
        var request = Containerd_Task_V2_CreateTaskRequest()
        request.id = "c1"
        request.bundle = "/run/containerd/io.containerd.runtime.v2.task/default/c1"
        request.rootfs = [mount]
        request.stdout = "/run/fifo/out"
        var options = Runtimeoptions_V1_Options()
        options.configPath = "/etc/kata/configuration.toml"
        request.options = try Google_Protobuf_Any(containerdTypeURLFor: options)
        let bytes: [UInt8] = try request.serializedBytes()
        let back = try Containerd_Task_V2_CreateTaskRequest(serializedBytes: bytes)
        // Messages holding an Any are compared by bytes (== on Any is false after a round trip).
        #expect(try back.serializedBytes() == bytes)
        #expect(back.rootfs.first?.options.count == 3)
        #expect(back.options.typeURL == "runtimeoptions.v1.Options")
        #expect(try Runtimeoptions_V1_Options(serializedBytes: back.options.value).configPath == "/etc/kata/configuration.toml")
    }

    @Test func statusEnumAndMetricsExist() throws {
        #expect(Containerd_V1_Types_Status.stopped.rawValue == 3)
        #expect(Containerd_V1_Types_Status.pausing.rawValue == 5)
        var metrics = Io_Containerd_Cgroups_V1_Metrics()
        metrics.memory.usage.usage = 4096
        metrics.pids.current = 3
        let any = try Google_Protobuf_Any(containerdTypeURLFor: metrics)
        #expect(any.typeURL == "io.containerd.cgroups.v1.Metrics")
        #expect(try Io_Containerd_Cgroups_V1_Metrics(serializedBytes: any.value).memory.usage.usage == 4096)
        var v2 = Io_Containerd_Cgroups_V2_Metrics()
        v2.pids.current = 1
        #expect(try Google_Protobuf_Any(containerdTypeURLFor: v2).typeURL == "io.containerd.cgroups.v2.Metrics")
    }

    @Test func googleRPCStatusIsAvailable() throws {
        var status = Google_Rpc_Status()
        status.code = 5
        status.message = "not found"
        #expect(try Google_Rpc_Status(serializedBytes: status.serializedBytes() as [UInt8]) == status)
    }

    @Test func eventAnyUsesBareTypeName() throws {
        var exit = Containerd_Events_TaskExit()
        exit.containerID = "c1"
        exit.id = "c1"
        exit.pid = 42
        exit.exitStatus = 137
        exit.exitedAt = Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 5)
        let any = try Google_Protobuf_Any(containerdTypeURLFor: exit)
        #expect(any.typeURL == "containerd.events.TaskExit")
        #expect(!any.typeURL.contains("/"))
        let back = try Containerd_Events_TaskExit(serializedBytes: any.value)
        #expect(back == exit)
        // On the wire: field 1 is the type URL, as text, with no prefix.
        let wire: [UInt8] = try any.serializedBytes()
        #expect(Array(wire.prefix(2)) == [0x0A, UInt8("containerd.events.TaskExit".utf8.count)])
        #expect(Array(wire[2..<28]) == Array("containerd.events.TaskExit".utf8))
    }

    @Test func forwardRequestCarriesTopicNamespaceAndTimestamp() throws {
        var start = Containerd_Events_TaskStart()
        start.containerID = "c1"
        start.pid = 7
        let when = Date(timeIntervalSince1970: 1_700_000_000)
        let request = try Containerd_Services_Events_Ttrpc_V1_ForwardRequest(event: start, namespace: "k8s.io", timestamp: when)
        #expect(request.envelope.topic == "/tasks/start")
        #expect(request.envelope.namespace == "k8s.io")
        #expect(request.envelope.timestamp.seconds == 1_700_000_000)
        #expect(request.envelope.event.typeURL == "containerd.events.TaskStart")
        #expect(try Containerd_Events_TaskStart(serializedBytes: request.envelope.event.value) == start)
    }

    @Test func topicsMatchContainerd() {
        #expect(Containerd_Events_TaskCreate.topic == "/tasks/create")
        #expect(Containerd_Events_TaskExit.topic == "/tasks/exit")
        #expect(Containerd_Events_TaskDelete.topic == "/tasks/delete")
        #expect(Containerd_Events_TaskExecAdded.topic == "/tasks/exec-added")
        #expect(Containerd_Events_TaskExecStarted.topic == "/tasks/exec-started")
        #expect(Containerd_Events_TaskOOM.topic == "/tasks/oom")
    }
}
