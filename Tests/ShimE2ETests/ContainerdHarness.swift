// A containerd of our own for end-to-end tests: own root/state/sockets under a temporary directory,
// started by scripts/containerd-env.sh with a directory holding only our shim first on its PATH.

import Foundation
@testable import Shim
import SystemSupport

/// Output of a finished command.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `arguments[0]` (looked up on PATH by /usr/bin/env) with the rest; waits for it. Spawned
/// with the shim's own posix_spawn helper: only fds 0-2 reach the child.
@discardableResult
func runCommand(_ arguments: [String], environment: [String: String]? = nil) throws -> CommandResult {
    var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
    guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw ContainerdHarness.HarnessError(description: "pipe failed") }
    let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
    let pid: pid_t
    do {
        pid = try spawnProcess(path: "/usr/bin/env", arguments: arguments, environment: env,
                               fds: [nil, outPipe[1], errPipe[1]], newProcessGroup: false)
    } catch {
        for fd in outPipe + errPipe { close(fd) }
        throw error
    }
    close(outPipe[1])
    close(errPipe[1])
    let errBox = DataBox()
    let errDone = DispatchSemaphore(value: 0)
    let errFD = errPipe[0]
    Thread.detachNewThread {
        errBox.data = readDescriptorToEnd(errFD)
        errDone.signal()
    }
    let outData = readDescriptorToEnd(outPipe[0])
    errDone.wait()
    close(outPipe[0])
    close(errPipe[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return CommandResult(status: exitStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errBox.data, as: UTF8.self))
}

func readDescriptorToEnd(_ fd: Int32) -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return data }
        data.append(contentsOf: buffer[0..<n])
    }
}

/// Hands data from a reader thread to the caller (written before the semaphore is signalled).
final class DataBox: @unchecked Sendable {
    var data = Data()
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

    /// Starts containerd; `extraEnvironment` reaches the shims it spawns. `installedBin` (an
    /// installed `$(PREFIX)/bin`) goes first on its PATH instead of a directory with our built shim.
    init(name: String, extraEnvironment: [String: String] = [:], installedBin: String? = nil) throws {
        directory = "/tmp/ks-e2e-\(name)-\(UUID().uuidString.prefix(6))"
        if let installedBin {
            shimDirectory = installedBin
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } else {
            shimDirectory = directory + "/bin"
            try FileManager.default.createDirectory(atPath: shimDirectory, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: shimDirectory + "/containerd-shim-kata-v2",
                                                       withDestinationPath: shimBinaryPath())
        }
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

    /// Pids of running processes whose executable is the shim on this containerd's PATH, started for it.
    func shimProcesses() -> [Int32] {
        let shim = URL(fileURLWithPath: shimDirectory + "/containerd-shim-kata-v2").resolvingSymlinksInPath().path
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"), exe == shim,
                  let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
            else { return false }
            return cmdline.contains(socket)
        }
    }

    /// Mount points below our directory.
    func mountsBelow() -> [String] {
        let mounts = (try? readWholeTextFile("/proc/self/mounts")) ?? ""
        return mounts.split(separator: "\n").map { $0.split(separator: " ") }.filter { $0.count > 1 }
            .map { String($0[1]) }.filter { $0.hasPrefix(directory + "/") }
    }

    func containerdLog() -> String {
        (try? String(contentsOfFile: directory + "/containerd.log", encoding: .utf8)) ?? ""
    }

    /// Restarts containerd the way an operator or a package upgrade does: SIGTERM (containerd
    /// leaves its shims and their tasks running), then the same configuration again. The
    /// snapshot mounts stay (unlike `stop`).
    func restart() throws {
        let pidText = (try? String(contentsOfFile: directory + "/containerd.pid", encoding: .utf8)) ?? ""
        guard let pid = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, SIGTERM) == 0 else {
            throw HarnessError(description: "no containerd to restart")
        }
        guard waitUntil(seconds: 20, { kill(pid, 0) != 0 }) else { throw HarnessError(description: "containerd did not stop") }
        let started = try runCommand([repositoryRoot + "/scripts/containerd-env.sh", "start", directory, shimDirectory],
                                     environment: environment)
        guard started.status == 0 else { throw HarnessError(description: "containerd did not restart: \(started.stderr)") }
    }

    /// Stops containerd and removes the directory.
    func stop() {
        _ = try? runCommand([repositoryRoot + "/scripts/containerd-env.sh", "stop", directory])
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Polls `condition` for up to `seconds`.
func waitUntil(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
