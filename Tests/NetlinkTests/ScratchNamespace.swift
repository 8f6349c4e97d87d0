// Network namespaces of the test's own (`ip netns add ks-test-<pid>-<n>`), deleted again even
// when a test fails. Nothing here touches the host's own interfaces, addresses or routes.
import Foundation
import Synchronization
import Testing

final class ScratchNamespace {
    private static let counter = Mutex(0)
    let name: String
    var path: String { "/var/run/netns/\(name)" }

    /// Root and iproute2 are needed; the host's namespace is never changed.
    static var available: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/tc")
    }

    init() throws {
        let n = Self.counter.withLock { value -> Int in
            value += 1
            return value
        }
        name = "ks-test-\(getpid())-\(n)"
        try Shell.run("ip", "netns", "add", name)
    }

    /// Runs `ip -n <name> ...` and returns its output.
    @discardableResult
    func ip(_ arguments: String...) throws -> String {
        try Shell.run(["ip", "-n", name] + arguments)
    }

    /// `tc -n <name> ...`.
    @discardableResult
    func tc(_ arguments: String...) throws -> String {
        try Shell.run(["tc", "-n", name] + arguments)
    }

    deinit { _ = try? Shell.run("ip", "netns", "delete", name) }
}

enum Shell {
    struct Failure: Error, CustomStringConvertible {
        let command: [String]
        let status: Int32
        let output: String
        var description: String { "\(command.joined(separator: " ")) exited \(status): \(output)" }
    }

    @discardableResult
    static func run(_ arguments: String...) throws -> String { try run(arguments) }

    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        // iproute2 lives in /usr/sbin, which a CI environment's PATH may lack.
        let sbin = "/usr/sbin/\(arguments[0])"
        if FileManager.default.isExecutableFile(atPath: sbin) {
            process.executableURL = URL(fileURLWithPath: sbin)
            process.arguments = Array(arguments.dropFirst())
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else { throw Failure(command: arguments, status: process.terminationStatus, output: output) }
        return output
    }
}
