import Foundation
import OCI
import Testing
@testable import Shim

@Suite struct TaskServiceTests {
    let directory: TemporaryDirectory
    let sandbox = FakeSandbox()
    let events = RecordingPublisher()
    let service: TaskService

    init() throws {
        directory = try TemporaryDirectory("task")
        service = TaskService(sandbox: sandbox, events: events, namespace: "test")
    }

    func create(_ id: String) async throws {
        let bundle = try makeBundle(in: directory.path, id: id)
        _ = try await service.create(.init(id: id, bundle: bundle.path))
    }

    func key(_ id: String, _ exec: String? = nil) -> ProcessKey { ProcessKey(containerID: id, execID: exec) }

    @Test func lifecyclePublishesEventsInOrder() async throws {
        defer { directory.remove() }
        try await create("c1")
        #expect(try await service.state(key("c1")).state == .created)
        let waiter = Task { try await service.wait(key("c1")) }  // Wait before Start, as ctr run does
        _ = try await service.start(key("c1"))
        #expect(try await service.state(key("c1")).state == .running)
        await sandbox.exit(key("c1"), code: 7)
        let status = try await waiter.value
        #expect(status.code == 7)
        #expect(try await service.state(key("c1")).state == .stopped(status))
        let deleted = try await service.delete(key("c1"))
        #expect(deleted.status.code == 7)
        #expect(events.topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"])
        await #expect(throws: TaskError.self) { try await service.state(key("c1")) }
    }

    @Test func startEventPrecedesExitEvenWhenProcessDiesDuringStart() async throws {
        defer { directory.remove() }
        try await create("c1")
        await sandbox.set(startDelay: .milliseconds(200))
        let start = Task { try await service.start(key("c1")) }
        try await Task.sleep(for: .milliseconds(50))
        await sandbox.exit(key("c1"), code: 1)  // the exit arrives while Start is still in the sandbox
        _ = try? await start.value
        #expect(await eventually { events.topics.count == 3 })
        #expect(events.topics == ["/tasks/create", "/tasks/start", "/tasks/exit"])
    }

    @Test func severalWaitersAllWake() async throws {
        defer { directory.remove() }
        try await create("c1")
        _ = try await service.start(key("c1"))
        let waiters = (0..<5).map { _ in Task { try await service.wait(key("c1")).code } }
        try await Task.sleep(for: .milliseconds(20))
        try await service.kill(key("c1"), signal: 9, all: false)
        for waiter in waiters { #expect(try await waiter.value == 137) }
    }

    @Test func errorsCarryContainerdClasses() async throws {
        defer { directory.remove() }
        func code(_ body: () async throws -> Void) async -> TaskError.Code? {
            do {
                try await body()
                return nil
            } catch {
                return TaskError.from(error).code
            }
        }
        #expect(await code { _ = try await service.start(key("nope")) } == .notFound)
        try await create("c1")
        #expect(await code { try await create("c1") } == .alreadyExists)
        #expect(await code { _ = try await service.delete(key("c1", "nope")) } == .notFound)
        #expect(await code { try await service.pause("c1") } == .failedPrecondition)  // created
        _ = try await service.start(key("c1"))
        #expect(await code { _ = try await service.start(key("c1")) } == .failedPrecondition)
        #expect(await code { _ = try await service.delete(key("c1")) } == .failedPrecondition)  // running
        let spec = Array(#"{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/"}"#.utf8)
        try await service.exec(key("c1", "e1"), specJSON: spec, stdio: StdioRequest())
        #expect(await code { try await service.exec(key("c1", "e1"), specJSON: spec, stdio: StdioRequest()) } == .alreadyExists)
        #expect(await code { try await service.exec(key("c1", "e2"), specJSON: Array("{".utf8), stdio: StdioRequest()) } == .invalidArgument)
        #expect(await code { try await service.kill(key("c1", "e1"), signal: 15, all: false) } == .failedPrecondition)  // not started
        #expect(await code { try await service.update("c1", resources: Array("[1]".utf8), annotations: [:]) } == .invalidArgument)
        #expect(await code { try await service.kill(key("c1"), signal: 0, all: false) } == .invalidArgument)
        try await service.pause("c1")
        #expect(await code { try await service.pause("c1") } == .failedPrecondition)
        try await service.resume("c1")
        try await service.kill(key("c1"), signal: 9, all: true)
        _ = try await service.wait(key("c1"))
        #expect(await code { try await service.kill(key("c1"), signal: 9, all: false) } == .notFound)  // already finished
        #expect(await code { try await service.exec(key("c1", "e3"), specJSON: spec, stdio: StdioRequest()) } == .failedPrecondition)
        _ = try await service.delete(key("c1", "e1"))  // created exec: removable
        _ = try await service.delete(key("c1"))
        #expect(await code { try await service.kill(key("c1"), signal: 9, all: false) } == .notFound)
    }

    @Test func execLifecycle() async throws {
        defer { directory.remove() }
        try await create("c1")
        _ = try await service.start(key("c1"))
        try await service.exec(key("c1", "e1"), specJSON: Array(#"{"user":{"uid":0,"gid":0},"args":["ls"],"cwd":"/"}"#.utf8), stdio: StdioRequest())
        _ = try await service.start(key("c1", "e1"))
        await #expect(throws: TaskError.self) { _ = try await service.delete(key("c1")) }  // exec still running
        await sandbox.exit(key("c1", "e1"), code: 0)
        #expect(try await service.wait(key("c1", "e1")).code == 0)
        _ = try await service.delete(key("c1", "e1"))
        #expect(events.topics == ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"])
        if case .exit(_, let id, _, _) = events.events[4] { #expect(id == "e1") } else { Issue.record("no exit") }
    }

    @Test func failedCreateLeavesNothing() async throws {
        defer { directory.remove() }
        await sandbox.set(failCreate: true)
        await #expect(throws: FakeSandbox.Failure.self) { try await create("c1") }
        await #expect(throws: TaskError.self) { try await service.state(key("c1")) }
        #expect(events.topics.isEmpty)
        await sandbox.set()
        try await create("c1")  // the id is free again
    }

    @Test func shutdownOnlyWhenEmpty() async throws {
        defer { directory.remove() }
        let ended = RecordingPublisher()
        let service = TaskService(sandbox: sandbox, events: events, namespace: "test") {
            ended.publish(.oom(containerID: "shutdown"))
        }
        let bundle = try makeBundle(in: directory.path, id: "c1")
        _ = try await service.create(.init(id: "c1", bundle: bundle.path))
        await service.shutdown(now: false)
        #expect(ended.events.isEmpty)
        _ = try await service.delete(key("c1"))  // created: removed (killed)
        await service.shutdown(now: false)
        #expect(ended.events.count == 1)
        #expect(await sandbox.calls.contains("shutdown"))
    }

    @Test func checkpointRestoreIsUnimplemented() async throws {
        defer { directory.remove() }
        let bundle = try makeBundle(in: directory.path, id: "c1")
        do {
            _ = try await service.create(.init(id: "c1", bundle: bundle.path, checkpoint: "/cp"))
            Issue.record("create from checkpoint succeeded")
        } catch {
            #expect(TaskError.from(error).code == .unimplemented)
        }
    }
}
