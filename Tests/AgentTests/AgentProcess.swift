// Test harness: runs a real kata-agent binary as a child process, its stderr captured in a file,
// and waits for lines of its log.

import Foundation
import Testing

/// A running kata-agent (or any command whose output we watch), stopped on `stop()`.
final class WatchedProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String
    private let logHandle: FileHandle

    /// Starts `executable` with `arguments`; stdout and stderr both go to a fresh log file.
    init(executable: String, arguments: [String], environment: [String: String]? = nil) throws {
        logPath = NSTemporaryDirectory() + "kata-agent-test-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = logHandle
        process.standardError = logHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? logHandle.close()
        try? FileManager.default.removeItem(atPath: logPath)
    }

    var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    var pid: Int32 { process.processIdentifier }

    /// Polls the log until it contains `text`; fails the test (and returns false) after `timeout`.
    @discardableResult
    func waitForLine(containing text: String, timeout: Duration = .seconds(30),
                     sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if log.contains(text) { return true }
            if !process.isRunning && !log.contains(text) { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        if log.contains(text) { return true }
        Issue.record("no '\(text)' within \(timeout); running=\(process.isRunning); log:\n\(log)",
                     sourceLocation: sourceLocation)
        return false
    }

    /// Waits for the process to exit on its own; nil if it is still running after `timeout`.
    func waitForExit(timeout: Duration = .seconds(30)) async -> Int32? {
        let end = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < end {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning { return nil }
        return process.terminationStatus
    }

    /// Sends `signal`, then waits for the exit status (killing it after `timeout`).
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) async -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, signal)
        if let status = await waitForExit(timeout: timeout) { return status }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return nil
    }
}

enum AgentBinaries {
    /// The debug kata-agent SwiftPM built next to the test bundle.
    static func debugAgent() throws -> String {
        let testBinary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let path = URL(fileURLWithPath: testBinary).deletingLastPathComponent().appendingPathComponent("kata-agent").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("kata-agent not built at \(path) (swift build --build-tests builds it)")
        }
        return path
    }

    /// A fresh socket path short enough for sun_path.
    static func socketPath() -> String {
        "/tmp/ka-\(UUID().uuidString.prefix(8)).sock"
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
