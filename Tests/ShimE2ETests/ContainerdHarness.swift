// A containerd of our own for end-to-end tests: own root/state/sockets under a temporary directory,
// started by scripts/containerd-env.sh with a directory holding only our shim first on its PATH.

import Foundation
import Shim

/// Output of a finished command.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `arguments[0]` with the rest as arguments; waits for it.
@discardableResult
func runCommand(_ arguments: [String], environment: [String: String]? = nil, stdin: Data? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
    try process.run()
    if let stdin {
        input.fileHandleForWriting.write(stdin)
        try input.fileHandleForWriting.close()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// The repository root (this file is Tests/ShimE2ETests/ContainerdHarness.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The shim binary built next to the test bundle.
func shimBinaryPath() -> String {
    let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = testBinary.deletingLastPathComponent()
    // .../debug/kata-swiftPackageTests.xctest is a file on Linux; walk up until the shim is found.
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("containerd-shim-kata-v2").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return repositoryRoot + "/.build/debug/containerd-shim-kata-v2"
}

/// Our own containerd.
final class ContainerdHarness {
    let directory: String
    let shimDirectory: String
    var socket: String { directory + "/containerd.sock" }
    private let environment: [String: String]

    /// Starts containerd; `extraEnvironment` reaches the shims it spawns.
    init(name: String, extraEnvironment: [String: String] = [:]) throws {
        directory = "/tmp/ks-e2e-\(name)-\(UUID().uuidString.prefix(6))"
        shimDirectory = directory + "/bin"
        try FileManager.default.createDirectory(atPath: shimDirectory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: shimDirectory + "/containerd-shim-kata-v2",
                                                   withDestinationPath: shimBinaryPath())
        var environment = ProcessInfo.processInfo.environment
        environment.merge(extraEnvironment) { $1 }
        self.environment = environment
        let started = try runCommand([repositoryRoot + "/scripts/containerd-env.sh", "start", directory, shimDirectory],
                                     environment: environment)
        guard started.status == 0 else {
            throw HarnessError(description: "containerd did not start: \(started.stderr)")
        }
    }

    struct HarnessError: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs ctr against this containerd.
    @discardableResult
    func ctr(_ arguments: [String]) throws -> CommandResult {
        try runCommand(["ctr", "-a", socket] + arguments, environment: environment)
    }

    /// Builds the busybox image offline and imports it as `reference`.
    func importBusybox(_ reference: String) throws {
        let archive = directory + "/busybox.tar"
        let made = try runCommand(["python3", repositoryRoot + "/scripts/make-image.py", archive, reference, "sh"])
        guard made.status == 0 else { throw HarnessError(description: "make-image: \(made.stderr)") }
        let imported = try ctr(["images", "import", archive])
        guard imported.status == 0 else { throw HarnessError(description: "import: \(imported.stderr)") }
    }

    func bundlePath(namespace: String = "default", id: String) -> String {
        directory + "/state/io.containerd.runtime.v2.task/\(namespace)/\(id)"
    }

    func shimSocket(namespace: String = "default", group: String) -> ShimSocket {
        ShimSocket(containerdAddress: socket, namespace: namespace, groupID: group)
    }

    /// Pids of running processes whose executable is our shim.
    func shimProcesses() -> [Int32] {
        let shim = URL(fileURLWithPath: shimBinaryPath()).resolvingSymlinksInPath().path
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe") else { return false }
            return exe == shim
        }
    }

    /// Mount points below our directory.
    func mountsBelow() -> [String] {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return mounts.split(separator: "\n").map { $0.split(separator: " ") }.filter { $0.count > 1 }
            .map { String($0[1]) }.filter { $0.hasPrefix(directory + "/") }
    }

    func containerdLog() -> String {
        (try? String(contentsOfFile: directory + "/containerd.log", encoding: .utf8)) ?? ""
    }

    /// Stops containerd and removes the directory.
    func stop() {
        _ = try? runCommand([repositoryRoot + "/scripts/containerd-env.sh", "stop", directory])
        try? FileManager.default.removeItem(atPath: directory)
    }
}
