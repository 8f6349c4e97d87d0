import Testing
@testable import Shim

@Suite struct ProcessStateTests {
    let status = ExitStatus(code: 3)

    @Test func allowedTransitions() throws {
        #expect(try ProcessState.created.applying(.start) == .running)
        #expect(try ProcessState.running.applying(.pause) == .paused)
        #expect(try ProcessState.paused.applying(.resume) == .running)
        #expect(try ProcessState.created.applying(.exit(status)) == .stopped(status))
        #expect(try ProcessState.running.applying(.exit(status)) == .stopped(status))
        #expect(try ProcessState.paused.applying(.exit(status)) == .stopped(status))
        #expect(try ProcessState.stopped(status).applying(.delete) == .deleted(status))
        #expect(try ProcessState.created.applying(.delete) == .deleted(nil))
    }

    @Test func invalidTransitionsThrowWithRuncWording() {
        #expect(throws: ProcessStateError(state: "running", event: "start")) { try ProcessState.running.applying(.start) }
        #expect(throws: ProcessStateError(state: "running", event: "delete")) { try ProcessState.running.applying(.delete) }
        #expect(throws: ProcessStateError(state: "paused", event: "delete")) { try ProcessState.paused.applying(.delete) }
        #expect(throws: ProcessStateError(state: "created", event: "pause")) { try ProcessState.created.applying(.pause) }
        #expect(throws: ProcessStateError(state: "running", event: "resume")) { try ProcessState.running.applying(.resume) }
        #expect(throws: ProcessStateError.self) { try ProcessState.stopped(status).applying(.exit(status)) }
        #expect(throws: ProcessStateError.self) { try ProcessState.stopped(status).applying(.start) }
        #expect(throws: ProcessStateError.self) { try ProcessState.deleted(nil).applying(.delete) }
        #expect(ProcessStateError(state: "running", event: "delete").description == "cannot delete a running process")
        #expect(TaskError.from(ProcessStateError(state: "running", event: "delete")).code == .failedPrecondition)
    }

    @Test func errorCodesMatchContainerdErrdefs() {
        #expect(TaskError.Code.invalidArgument.rpcCode == 3)
        #expect(TaskError.Code.notFound.rpcCode == 5)
        #expect(TaskError.Code.alreadyExists.rpcCode == 6)
        #expect(TaskError.Code.failedPrecondition.rpcCode == 9)
        #expect(TaskError.Code.unimplemented.rpcCode == 12)
        #expect(TaskError.from(SomeSandboxFailure()).code == .unknown)
        #expect(TaskError.from(SomeSandboxFailure()).message == "the sandbox failed")
    }
}

/// A sandbox's own error: containerd sees it as `unknown`, with its description.
private struct SomeSandboxFailure: Error, CustomStringConvertible {
    var description: String { "the sandbox failed" }
}
