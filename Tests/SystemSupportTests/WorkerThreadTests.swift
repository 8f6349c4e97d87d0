import CSupport
import Glibc
import Synchronization
import SystemSupport
import Testing

@Suite(.serialized) struct WorkerThreadTests {
    struct Failure: Error, Equatable { let code: Int }

    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func set(_ on: Bool = true) { value.store(on, ordering: .releasing) }
        var isSet: Bool { value.load(ordering: .acquiring) }
    }

    @Test func runReturnsTheValueOfTheBody() async throws {
        let value = try await WorkerThread.run(name: "test-run") { 6 * 7 }
        #expect(value == 42)
    }

    @Test func runRethrowsWhatTheBodyThrew() async {
        do {
            _ = try await WorkerThread.run(name: "test-throw") { () throws(Failure) -> Int in throw Failure(code: 7) }
            Issue.record("run returned")
        } catch {
            guard case .failed(let failure) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(failure == Failure(code: 7))
        }
    }

    @Test func runAndWaitRunsOnAnotherThread() throws {
        let caller = pthread_self()
        let other = try WorkerThread.runAndWait(name: "test-wait") { pthread_equal(pthread_self(), caller) == 0 }
        #expect(other)
        #expect(throws: WorkerThread.RunError<Failure>.self) {
            try WorkerThread.runAndWait(name: "test-wait") { () throws(Failure) in throw Failure(code: 1) }
        }
    }

    @Test func theThreadIsNamed() throws {
        let name = try WorkerThread.runAndWait(name: "a-rather-long-thread-name") { () throws(Errno) -> String in
            try readWholeTextFile("/proc/thread-self/comm")
        }
        #expect(name == "a-rather-long-t\n")
    }

    /// The kick of a vCPU thread: a signal reaches the thread while its body runs (a blocking
    /// call returns EINTR), and none is sent once the body has returned.
    @Test func signalInterruptsTheBodyAndIsANoOpAfterIt() throws {
        let signo = ks_sigrtmin() + 2
        #expect(ks_install_kick_handler(signo) == 0)
        let interrupted = Flag()
        let started = Flag()
        let thread = try WorkerThread(name: "test-signal") {
            _ = ks_unblock_signal(signo)
            started.set()
            var fds: [Int32] = [-1, -1]
            guard ks_pipe_cloexec(&fds) == 0 else { return }
            defer { close(fds[0]); close(fds[1]) }
            var byte: UInt8 = 0
            let n = read(fds[0], &byte, 1)  // nobody writes: only a signal ends this
            interrupted.set(n < 0 && errno == EINTR)
        }
        while !started.isSet { usleep(1000) }
        for _ in 0..<2000 where !interrupted.isSet {
            thread.signal(signo)
            usleep(1000)
        }
        thread.join()
        let wasInterrupted = interrupted.isSet
        #expect(wasInterrupted)
        thread.signal(signo)  // the thread is gone: nothing is sent
    }

    @Test func detachedThreadsRunToTheEnd() async throws {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        try WorkerThread.detach(name: "test-detach") { continuation.yield(5); continuation.finish() }
        var values: [Int] = []
        for await value in stream { values.append(value) }
        #expect(values == [5])
    }
}

@Suite struct WholeFileTests {
    @Test func readsProcFilesWhoseSizeIsZero() throws {
        let text = try readWholeTextFile("/proc/self/status")
        #expect(text.contains("Name:"))
        #expect(try readWholeFile("/proc/self/status", limit: 5).count == 5)
    }

    @Test func writeAllAndReadToEndRoundTripThroughAPipe() throws {
        var fds: [Int32] = [-1, -1]
        #expect(ks_pipe_cloexec(&fds) == 0)
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }
        try writeAll(fds[1], bytes)
        close(fds[1])
        #expect(try readToEnd(fds[0]) == bytes)
        close(fds[0])
    }

    @Test func errnoKeepsTheTextInOnePlace() {
        #expect(Errno(ENOENT).message == "No such file or directory")
        #expect(Errno(ENOENT).description == "No such file or directory (errno 2)")
        #expect(Errno(ENOENT) == .noEntry)
    }
}
