// Interoperability with Go's ttrpc (the one containerd 1.6 is built with): `ctr shim` dials our
// server exactly as it dials a real shim, at /run/containerd/s/<sha256(address/ns/id)>.
import ContainerdAPI
import Foundation
import TTRPC
import Testing

/// Runs a program to completion and returns its exit status and merged output.
func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try? pipe.fileHandleForReading.close()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// containerd's shim socket path for `address`, `namespace` and `id` (runtime/v2/shim SocketAddress).
func shimSocketPath(address: String, namespace: String, id: String) throws -> String {
    let input = Pipe()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    try input.fileHandleForWriting.write(contentsOf: Data("\(address)/\(namespace)/\(id)".utf8))
    try input.fileHandleForWriting.close()
    let digest = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
    process.waitUntilExit()
    return "/run/containerd/s/" + digest
}

@Suite(.serialized) struct GoInteropTests {
    static let ctrPresent = FileManager.default.isExecutableFile(atPath: "/usr/bin/ctr")

    @Test func socketAddressMatchesContainerdTestVector() throws {
        let path = try shimSocketPath(address: "/run/containerd/containerd.sock", namespace: "default", id: "test1")
        #expect(path == "/run/containerd/s/05380991aeb734527f768875a3abe60fc483550242e2fc78fd0aecdbbe4576f1")
    }

    @Test(.enabled(if: ctrPresent, "ctr (Debian package containerd) is not installed"))
    func goClientCallsOurTaskService() async throws {
        let (directory, _) = try temporarySocketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let address = directory + "/containerd.sock"  // never dialled: only hashed into the shim path
        let socket = try shimSocketPath(address: address, namespace: "default", id: "c1")
        try FileManager.default.createDirectory(atPath: "/run/containerd/s", withIntermediateDirectories: true)
        let server = TTRPCServer()
        server.register(FakeTask())
        try await server.listen(unixSocketPath: socket)
        defer { try? FileManager.default.removeItem(atPath: socket) }

        let state = try run("/usr/bin/ctr", ["-a", address, "-n", "default", "shim", "--id", "c1", "state"])
        #expect(state.status == 0, "ctr shim state: \(state.output)")
        #expect(state.output.contains("\"id\": \"c1\""), "\(state.output)")
        #expect(state.output.contains("\"status\": 2"), "\(state.output)")

        // Our status codes come back to Go as errors with our messages.
        let deleted = try run("/usr/bin/ctr", ["-a", address, "-n", "default", "shim", "--id", "c1", "delete"])
        #expect(deleted.status != 0)
        #expect(deleted.output.contains("Delete not implemented"), "\(deleted.output)")

        let missing = try shimSocketPath(address: address, namespace: "default", id: "nope")
        try await server.listen(unixSocketPath: missing)
        defer { try? FileManager.default.removeItem(atPath: missing) }
        let notFound = try run("/usr/bin/ctr", ["-a", address, "-n", "default", "shim", "--id", "nope", "state"])
        #expect(notFound.status != 0)
        #expect(notFound.output.contains("container nope not found"), "\(notFound.output)")
        await server.close()
    }
}
