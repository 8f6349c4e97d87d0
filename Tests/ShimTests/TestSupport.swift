// Helpers for the shim tests: temporary bundles, a recording event publisher, and `FakeSandbox`,
// a test double whose processes exit only when the test says so, with failure switches.

import Foundation
import OCI
import Synchronization
@testable import Shim

/// A temporary directory, removed (with anything mounted below it unmounted first) by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ name: String = "shim-test") throws {
        let base = FileManager.default.temporaryDirectory.path + "/ks-\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        path = base
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Writes a bundle (config.json + empty rootfs) and returns it.
func makeBundle(in directory: String, id: String, args: [String] = ["sleep"], annotations: [String: String] = [:],
                terminal: Bool = false) throws -> BundleDirectory {
    let path = directory + "/" + id
    try FileManager.default.createDirectory(atPath: path + "/rootfs", withIntermediateDirectories: true)
    let spec: [String: Any] = [
        "ociVersion": "1.0.2",
        "process": ["terminal": terminal, "user": ["uid": 0, "gid": 0], "args": args, "env": ["PATH=/bin"], "cwd": "/"],
        "root": ["path": "rootfs"],
        "annotations": annotations,
    ]
    try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: path + "/config.json"))
    return BundleDirectory(path: path)
}

/// Records published events in order.
final class RecordingPublisher: EventPublisher, Sendable {
    private let recorded = Mutex<[TaskEvent]>([])

    func publish(_ event: TaskEvent) {
        recorded.withLock { $0.append(event) }
    }

    var events: [TaskEvent] { recorded.withLock { $0 } }
    var topics: [String] { events.map(\.topic) }
}

/// A test double: processes run until `exit(_:code:)` or a signal; switches make calls fail.
actor FakeSandbox: Sandbox {
    var failCreate = false
    var failStart = false
    var startDelay: Duration = .zero
    private(set) var calls: [String] = []
    private var exits: [ProcessKey: UInt32] = [:]
    private var waiters: [ProcessKey: [CheckedContinuation<UInt32, Never>]] = [:]
    private var nextPID: UInt32 = 100

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func set(failCreate: Bool = false, failStart: Bool = false, startDelay: Duration = .zero) {
        self.failCreate = failCreate
        self.failStart = failStart
        self.startDelay = startDelay
    }

    /// Makes a process exit with `code`.
    func exit(_ key: ProcessKey, code: UInt32) {
        guard exits[key] == nil else { return }
        exits[key] = code
        for waiter in waiters.removeValue(forKey: key) ?? [] { waiter.resume(returning: code) }
    }

    func createContainer(_ config: ContainerConfig) async throws -> UInt32 {
        calls.append("create \(config.id)")
        if failCreate { throw Failure(description: "fake: create failed") }
        nextPID += 1
        return nextPID
    }

    func addProcess(containerID: String, execID: String, spec: OCIProcess, stdio: ProcessStdio) async throws {
        calls.append("exec \(execID)")
    }

    func startProcess(containerID: String, execID: String?) async throws -> UInt32 {
        calls.append("start \(execID ?? containerID)")
        if startDelay > .zero { try await Task.sleep(for: startDelay) }
        if failStart { throw Failure(description: "fake: start failed") }
        nextPID += 1
        return nextPID
    }

    func signalProcess(containerID: String, execID: String?, signal: UInt32, all: Bool) async throws {
        calls.append("signal \(execID ?? containerID) \(signal)\(all ? " all" : "")")
        exit(ProcessKey(containerID: containerID, execID: execID), code: 128 + signal)
    }

    func waitProcess(containerID: String, execID: String?) async throws -> UInt32 {
        let key = ProcessKey(containerID: containerID, execID: execID)
        if let code = exits[key] { return code }
        return await withCheckedContinuation { waiters[key, default: []].append($0) }
    }

    func resizePty(containerID: String, execID: String?, width: UInt32, height: UInt32) async throws {
        calls.append("resize \(width)x\(height)")
    }

    func closeStdin(containerID: String, execID: String?) async throws { calls.append("close-stdin") }
    func pids(containerID: String) async throws -> [UInt32] { [1, 2] }

    func stats(containerID: String) async throws -> EncodedMetrics {
        EncodedMetrics(typeURL: "io.containerd.cgroups.v1.Metrics", value: [])
    }

    func pause(containerID: String) async throws { calls.append("pause") }
    func resume(containerID: String) async throws { calls.append("resume") }

    func update(containerID: String, resources: [UInt8], annotations: [String: String]) async throws {
        calls.append("update")
    }

    func removeProcess(containerID: String, execID: String) async throws { calls.append("remove \(execID)") }
    func removeContainer(containerID: String) async throws { calls.append("remove \(containerID)") }
    func shutdown() async { calls.append("shutdown") }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(5), _ condition: () async -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}
