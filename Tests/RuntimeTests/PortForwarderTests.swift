// Port forwarding's host half without a VM: a network namespace of the test's own, the real BPF
// sk_lookup program and listener, and a stand-in for the agent's end of PortForwardWire on a
// socketpair (the guest's end runs in the CRI suite's port_forward case). Connections to
// 127.0.0.1:ANY in the namespace reach the stand-in with their port; other addresses do not;
// stop() detaches the program and leaves no descriptor.

import AgentAPI
import CNet
import CSupport
import Foundation
import Logging
import Synchronization
import SystemSupport
import Testing
@testable import Runtime

@Suite(.serialized) struct PortForwarderTests {
    /// `ip netns add` of the test's own, deleted at the end.
    final class Namespace {
        let name = "ks-pf-\(getpid())"
        var path: String { "/var/run/netns/\(name)" }

        init() throws {
            _ = try Self.ip(["netns", "add", name])
            _ = try Self.ip(["-n", name, "link", "set", "lo", "up"])
        }

        deinit { _ = try? Self.ip(["netns", "delete", name]) }

        static func ip(_ arguments: [String]) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = arguments
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw PortForwardTestError.command(arguments, process.terminationStatus) }
            return process.terminationStatus
        }
    }

    enum PortForwardTestError: Error {
        case command([String], Int32)
        case system(String, Int32)
    }

    /// The agent's end: answers `refuse` for that port, else 0 and echoes until end of file.
    final class StandInAgent: Sendable {
        let ports = Mutex<[UInt16]>([])
        let refuse: UInt16

        init(refusing port: UInt16) { refuse = port }

        func connect() throws -> FileDescriptor {
            var fds: [Int32] = [-1, -1]
            let rc = ks_unix_socketpair(&fds)
            guard rc == 0 else { throw PortForwardTestError.system("socketpair", -rc) }
            let agentEnd = FileDescriptor(owning: fds[1])
            try WorkerThread.detach(name: "stand-in") { [self] in serve(agentEnd) }
            return FileDescriptor(owning: fds[0])
        }

        private func serve(_ fd: FileDescriptor) {
            guard let header = try? fd.read(upTo: PortForwardWire.headerSize),
                  let (_, port) = PortForwardWire.parse(header) else { return }
            ports.withLock { $0.append(port) }
            guard port != refuse else {
                try? fd.writeAll([UInt8(ECONNREFUSED)])
                return
            }
            try? fd.writeAll([0])
            while let data = try? fd.read(upTo: 4096), !data.isEmpty { try? fd.writeAll(data) }
        }
    }

    /// Connects to `address:port` from inside the namespace, sends `message`, half-closes, and
    /// returns what came back, or the errno of the connect or read.
    static func exchange(_ namespace: Namespace, _ address: String, _ port: UInt16, _ message: String) throws -> Result<String, Errno> {
        let nsfd = try FileDescriptor.open(namespace.path, O_RDONLY)
        return try onThread {
            guard ks_setns_net(nsfd.rawValue) == 0 else { return .failure(Errno(rawValue: errno)) }
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return .failure(Errno(rawValue: errno)) }
            let socketFD = FileDescriptor(owning: fd)
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            inet_pton(AF_INET, address, &sin.sin_addr)
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { return .failure(Errno(rawValue: errno)) }
            do throws(Errno) {
                try socketFD.writeAll(Array(message.utf8))
                shutdown(fd, Int32(SHUT_WR))
                var received: [UInt8] = []
                while true {
                    let chunk = try socketFD.read(upTo: 4096)
                    if chunk.isEmpty { break }
                    received += chunk
                }
                return .success(String(decoding: received, as: UTF8.self))
            } catch {
                return .failure(error)
            }
        }
    }

    /// Runs `body` on a thread of its own (which may change namespace) and returns its result.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) throws -> T {
        let result = Mutex<T?>(nil)
        let thread = try WorkerThread(name: "client") {
            let value = body()
            result.withLock { $0 = value }
        }
        thread.join()
        return result.withLock { $0! }
    }

    /// Open descriptors, not counting the timerfds the concurrency runtime opens lazily.
    static func openDescriptors() -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return entries.filter { entry in
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + entry)) ?? ""
            return !target.contains("timerfd")
        }.count
    }

    static func forwardAndStop(_ namespace: Namespace, _ agent: StandInAgent) async throws {
        let forwarder = try PortForwarder(namespacePath: namespace.path, logger: Logger(label: "test")) { try agent.connect() }

        #expect(try Self.exchange(namespace, "127.0.0.1", 4242, "hello") == .success("hello"))
        #expect(try Self.exchange(namespace, "127.0.0.1", 80, "second port") == .success("second port"))
        let refused = try Self.exchange(namespace, "127.0.0.1", 9, "x")
        #expect(refused == .failure(Errno(rawValue: ECONNRESET)) || refused == .success(""), "port 9: \(refused)")
        // Other loopback addresses are not steered: nothing listens there.
        #expect(try Self.exchange(namespace, "127.0.0.2", 4242, "x") == .failure(Errno(rawValue: ECONNREFUSED)))
        #expect(agent.ports.withLock { $0 } == [4242, 80, 9])

        await forwarder.stop()
    }

    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip"), "needs root and iproute2"))
    func loopbackConnectionsOfEveryPortReachTheAgent() async throws {
        let namespace = try Namespace()
        let agent = StandInAgent(refusing: 9)
        let fdsBefore = Self.openDescriptors()
        // In a function of its own, so the forwarder is gone when the descriptors are counted.
        try await Self.forwardAndStop(namespace, agent)
        #expect(try Self.exchange(namespace, "127.0.0.1", 4242, "x") == .failure(Errno(rawValue: ECONNREFUSED)))
        // The stand-in's threads close their ends once the relays hung up.
        let deadline = ContinuousClock.now + .seconds(5)
        while Self.openDescriptors() > fdsBefore && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(Self.openDescriptors() <= fdsBefore, "descriptors: \(fdsBefore) before, \(Self.openDescriptors()) after stop")
    }

    @Test func wireHeaderRoundTripsAndRejectsWhatThisVersionDoesNotSpeak() {
        let header = PortForwardWire.header(family: 4, port: 8081)
        #expect(header == [1, 4, 0x1F, 0x91])
        #expect(PortForwardWire.parse(header)?.port == 8081)
        #expect(PortForwardWire.parse([2, 4, 0x1F, 0x91]) == nil)  // version
        #expect(PortForwardWire.parse([1, 5, 0x1F, 0x91]) == nil)  // family
        #expect(PortForwardWire.parse([1, 4, 0, 0]) == nil)  // port 0
        #expect(PortForwardWire.parse([1, 4, 0x1F]) == nil)  // short
        #expect(PortForwardWire.status(errno: 0) == 1 && PortForwardWire.status(errno: 4000) == 255)
    }
}
