// The artifacts the PID-1 tests need: the fully static kata-agent, its initramfs, and the guest
// kernel. Taken from KATA_AGENT_INITRD (binary `kata-agent` beside it) and KATA_GUEST_KERNEL
// when set (make test sets them), otherwise built once per test run with the guest-image scripts
// (cached: the kernel by its inputs, the agent by SwiftPM's incremental build in .build-agent).

import Foundation

struct GuestArtifacts: Sendable {
    let agentBinary: String
    let initramfs: String
    let kernel: String
}

enum StaticAgent {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Built at most once per test process, whichever test asks first.
    private static let build = Task<GuestArtifacts, any Error> {
        let environment = ProcessInfo.processInfo.environment
        let initramfs: String
        if let given = environment["KATA_AGENT_INITRD"], FileManager.default.fileExists(atPath: given) {
            initramfs = given
        } else {
            initramfs = try run(repositoryRoot + "/guest-image/build-agent-initramfs.sh", [])
        }
        let agentBinary = URL(fileURLWithPath: initramfs).deletingLastPathComponent().appendingPathComponent("kata-agent").path
        guard FileManager.default.isExecutableFile(atPath: agentBinary) else {
            throw HarnessError("no static kata-agent beside \(initramfs)")
        }
        let kernel: String
        if let given = environment["KATA_GUEST_KERNEL"], FileManager.default.fileExists(atPath: given) {
            kernel = given
        } else {
            kernel = try run(repositoryRoot + "/guest-image/build-kernel.sh", []) + "/vmlinux"
        }
        return GuestArtifacts(agentBinary: agentBinary, initramfs: initramfs, kernel: kernel)
    }

    static func artifacts() async throws -> GuestArtifacts {
        try await build.value
    }

    /// Runs a build script; its last stdout line is the result, its stderr passes through.
    private static func run(_ script: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: repositoryRoot)
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw HarnessError("\(script) failed with status \(process.terminationStatus)")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        guard let last = lines.last else { throw HarnessError("\(script) printed nothing") }
        return String(last)
    }
}
