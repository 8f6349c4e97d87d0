// Sandbox, container and exec IDs become host path components: refused unless they pass
// containerd's identifier rule, wherever they arrive (flags, Create, Exec).

import Foundation
import OCI
import Testing
@testable import Shim

@Suite struct IdentifierTests {
    static let bad = ["", "../../x", "..", ".", "a/b", "/abs", "-a", "a-", "a..b", "a_-b", "a b", "é", String(repeating: "a", count: 77)]
    static let good = ["a", "pod1", "A.b_c-d", "0", "f7c0a2b1e3d4", String(repeating: "a", count: 76)]

    @Test func containerdsRule() {
        for id in Self.good { #expect(Identifier.isValid(id), "\(id)") }
        for id in Self.bad { #expect(!Identifier.isValid(id), "\(id)") }
    }

    @Test(arguments: ["../../x", "a/b", ""])
    func flagsRefuseAnIDThatIsNotAnIdentifier(_ id: String) throws {
        let flags = try ShimFlags(parsing: ["-namespace", "n", "-id", id, "-address", "/a"])
        #expect(throws: ShimFlagsError.self) { try flags.validate() }
    }

    @Test func createAndExecRefuseIDsThatAreNotIdentifiers() async throws {
        let directory = try TemporaryDirectory("ids")
        defer { directory.remove() }
        let service = TaskService(sandbox: FakeSandbox(), events: RecordingPublisher(), namespace: "test")
        let bundle = try makeBundle(in: directory.path, id: "b")
        for id in ["../../x", "a/b", ".."] {
            await #expect(throws: TaskError.self) { _ = try await service.create(.init(id: id, bundle: bundle.path)) }
        }
        _ = try await service.create(.init(id: "c1", bundle: bundle.path))
        let spec = Array(#"{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/"}"#.utf8)
        let error = await #expect(throws: TaskError.self) {
            try await service.exec(ProcessKey(containerID: "c1", execID: "../e"), specJSON: spec, stdio: StdioRequest())
        }
        #expect(error?.code == .invalidArgument)
    }
}
