// Serving on descriptors made elsewhere: a listening socket (containerd's fd 3) and a connected pair.
import Foundation
import Testing

@testable import TTRPC

/// A bound, listening Unix stream socket at `path`, made with plain system calls.
func makeListeningSocket(path: String) throws -> CInt {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TTRPCError(.internal, "socket: errno \(errno)") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: Array(path.utf8) + [0])
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0, listen(fd, 16) == 0 else {
        close(fd)
        throw TTRPCError(.internal, "bind/listen: errno \(errno)")
    }
    return fd
}

extension SocketTests {
    @Suite struct Descriptors {
        @Test func serveOnInheritedListeningDescriptor() async throws {
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let path = directory + "/fd3.sock"
            let probe = Probe()
            let server = TTRPCServer()
            server.register(testService(probe))
            try await server.listen(listeningDescriptor: try makeListeningSocket(path: path))
            for _ in 0..<3 {
                let client = try await TTRPCClient.connect(unixSocketPath: path)
                #expect(try await client.call(service: "test.Echo", method: "Raw", payload: [1, 2]) == [2, 1])
                await client.close()
            }
            await server.close()
        }

        @Test func serveAndCallOverConnectedPair() async throws {
            var pair: [CInt] = [-1, -1]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
            let probe = Probe()
            let server = TTRPCServer()
            server.register(testService(probe))
            try await server.serve(connectedDescriptor: pair[0])
            let client = try await TTRPCClient.connect(connectedDescriptor: pair[1])
            let reply: StringValue = try await client.call(service: "test.Echo", method: "Echo", request: string("pair"))
            #expect(reply.value == "pair")
            #expect(server.connectionCount == 1)
            await client.close()
            try await probe.waitUntil("the server side to close") { server.connectionCount == 0 }
            await server.close()
        }
    }
}
