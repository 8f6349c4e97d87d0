// Client <-> server over a real Unix socket: typed calls, concurrency, deadlines, metadata, status codes.
import Foundation
import Synchronization
import Testing

@testable import TTRPC

/// Every test that opens sockets runs in this suite, one at a time, so descriptor counts are meaningful.
@Suite(.serialized) struct SocketTests {}

extension SocketTests {
    @Suite struct ClientServer {
        @Test func typedRoundTrip() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            let reply: StringValue = try await client.call(service: "test.Echo", method: "Echo", request: string("hello"))
            #expect(reply.value == "hello")
            let raw = try await client.call(service: "test.Echo", method: "Raw", payload: [1, 2, 3])
            #expect(raw == [3, 2, 1])
            await client.close()
            await fixture.stop()
        }

        @Test func blockedCallDoesNotStallOthers() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            let blocked = Task {
                let reply: StringValue = try await client.call(service: "test.Echo", method: "Block", request: string("late"))
                return reply.value
            }
            try await fixture.probe.waitUntil("the blocking call to start") { fixture.probe.started.withLock { $0 } == 1 }
            // 50 calls on the same connection complete while the first one is still blocked.
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        let reply: StringValue = try await client.call(service: "test.Echo", method: "Echo", request: string("\(index)"))
                        return reply.value
                    }
                }
                var seen = Set<String>()
                for try await value in group {
                    seen.insert(value)
                }
                #expect(seen == Set((0..<50).map { "\($0)" }))
            }
            #expect(fixture.server.activeCallCount == 1)
            fixture.probe.gateOpen.withLock { $0 = true }
            #expect(try await blocked.value == "late")
            await client.close()
            await fixture.stop()
        }

        @Test func clientTimeoutGivesDeadlineExceededAndCancelsHandler() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            let started = ContinuousClock.now
            let code = await failureCode {
                try await client.call(
                    service: "test.Echo", method: "Block", request: string("x"),
                    options: TTRPCCallOptions(timeout: .milliseconds(100))) as StringValue
            }
            #expect(code == .deadlineExceeded)
            #expect(ContinuousClock.now - started < .seconds(3))
            // The server saw timeout_nano and cancelled its handler on its own deadline.
            try await fixture.probe.waitUntil("the handler to be cancelled") { fixture.probe.cancelled.withLock { $0 } == 1 }
            try await fixture.probe.waitUntil("no call in flight") { fixture.server.activeCallCount == 0 }
            // The connection still works.
            let reply: StringValue = try await client.call(service: "test.Echo", method: "Echo", request: string("ok"))
            #expect(reply.value == "ok")
            await client.close()
            await fixture.stop()
        }

        @Test func deadlineReachesHandler() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            let none: StringValue = try await client.call(service: "test.Echo", method: "Deadline", request: string(""))
            #expect(none.value == "none")
            let some: StringValue = try await client.call(
                service: "test.Echo", method: "Deadline", request: string(""),
                options: TTRPCCallOptions(timeout: .seconds(30)))
            #expect(["29", "30"].contains(some.value))
            await client.close()
            await fixture.stop()
        }

        @Test func metadataReachesHandler() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            var options = TTRPCCallOptions()
            options.metadata.add("containerd-namespace-ttrpc", "default")
            options.metadata.add("X-Multi", "one")
            options.metadata.add("x-multi", "two")
            let reply: StringValue = try await client.call(
                service: "test.Echo", method: "Metadata", request: string(""), options: options)
            #expect(reply.value == "containerd-namespace-ttrpc=default;x-multi=one;x-multi=two")
            await client.close()
            await fixture.stop()
        }

        @Test func everyStatusCodeRoundTrips() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            for code in TTRPCStatusCode.allKnown.dropFirst() + [TTRPCStatusCode(rawValue: 99)] {
                do {
                    let _: StringValue = try await client.call(
                        service: "test.Echo", method: "Fail", request: string("\(code.rawValue)"))
                    Issue.record("code \(code) came back as success")
                } catch let error as TTRPCError {
                    #expect(error == TTRPCError(code, "failed with \(code.rawValue)"))
                }
            }
            // Code 0 on the wire is success with an empty payload.
            let ok: StringValue = try await client.call(service: "test.Echo", method: "Fail", request: string("0"))
            #expect(ok.value == "")
            await client.close()
            await fixture.stop()
        }

        @Test func plainErrorsBecomeUnknown() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            do {
                let _: StringValue = try await client.call(service: "test.Echo", method: "Crash", request: string(""))
                Issue.record("succeeded")
            } catch let error as TTRPCError {
                #expect(error == TTRPCError(.unknown, "plain failure"))
            }
            await client.close()
            await fixture.stop()
        }

        @Test func unknownServiceAndMethodAreUnimplemented() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            #expect(await failureCode { try await client.call(service: "test.Nope", method: "Echo", payload: []) } == .unimplemented)
            #expect(await failureCode { try await client.call(service: "test.Echo", method: "Nope", payload: []) } == .unimplemented)
            await client.close()
            await fixture.stop()
        }

        @Test func pendingCallsFailWhenServerGoesAway() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            let pending = Task {
                try await client.call(service: "test.Echo", method: "Block", payload: [])
            }
            try await fixture.probe.waitUntil("the call to start") { fixture.probe.started.withLock { $0 } == 1 }
            await fixture.server.close()
            #expect(await failureCode { try await pending.value } == .unavailable)
            await client.waitUntilClosed()
            #expect(!client.isActive)
            #expect(await failureCode { try await client.call(service: "test.Echo", method: "Echo", payload: []) } == .unavailable)
            try await fixture.probe.waitUntil("the handler to be cancelled") { fixture.probe.cancelled.withLock { $0 } == 1 }
            await fixture.stop()
        }

        @Test func cancellingTheCallerCancelsTheCall() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            let pending = Task {
                try await client.call(service: "test.Echo", method: "Block", payload: [])
            }
            try await fixture.probe.waitUntil("the call to start") { fixture.probe.started.withLock { $0 } == 1 }
            pending.cancel()
            #expect(await failureCode { try await pending.value } == .cancelled)
            let reply = try await client.call(service: "test.Echo", method: "Raw", payload: [9])
            #expect(reply == [9])
            await client.close()
            await fixture.stop()
        }

        @Test func connectToMissingSocketIsUnavailable() async throws {
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            #expect(await failureCode { try await TTRPCClient.connect(unixSocketPath: directory + "/none.sock") } == .unavailable)
        }

        @Test func gracefulShutdownLetsCallsFinish() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            let pending = Task {
                try await client.call(service: "test.Echo", method: "Block", request: string("done")) as StringValue
            }
            try await fixture.probe.waitUntil("the call to start") { fixture.probe.started.withLock { $0 } == 1 }
            let shutdown = Task { await fixture.server.shutdown(gracePeriod: .seconds(5)) }
            try await Task.sleep(for: .milliseconds(50))
            // No new connections once shutting down.
            #expect(await failureCode { try await TTRPCClient.connect(unixSocketPath: fixture.path) } == .unavailable)
            fixture.probe.gateOpen.withLock { $0 = true }
            #expect(try await pending.value.value == "done")
            await shutdown.value
            await client.waitUntilClosed()
            await fixture.stop()
        }
    }
}

extension SocketTests {
    @Suite struct Throughput {
        /// Sequential and concurrent calls on one connection; prints the rates it measured.
        @Test func manyCallsOnOneConnection() async throws {
            let fixture = try await Fixture()
            let client = try await fixture.client()
            let count = 2000
            let clock = ContinuousClock()
            let sequential = try await clock.measure {
                for index in 0..<count {
                    let reply = try await client.call(service: "test.Echo", method: "Raw", payload: [UInt8(index & 0xFF), 1])
                    #expect(reply == [1, UInt8(index & 0xFF)])
                }
            }
            let concurrent = try await clock.measure {
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    for index in 0..<count {
                        group.addTask {
                            let reply = try await client.call(service: "test.Echo", method: "Raw", payload: [UInt8(index & 0xFF), 2])
                            return reply == [2, UInt8(index & 0xFF)]
                        }
                    }
                    var good = 0
                    for try await ok in group where ok {
                        good += 1
                    }
                    #expect(good == count)
                }
            }
            func rate(_ duration: Duration) -> Int {
                Int(Double(count) / (Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18))
            }
            print("ttrpc over a Unix socket: \(count) sequential calls in \(sequential) (\(rate(sequential))/s), "
                + "\(count) concurrent calls in \(concurrent) (\(rate(concurrent))/s)")
            await client.close()
            await fixture.stop()
        }
    }
}
