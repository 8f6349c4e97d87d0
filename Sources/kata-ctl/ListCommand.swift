import ArgumentParser
import Foundation
import Runtime

/// `kata-ctl list`: the sandboxes on this host (the directories under the configured sandbox_dir,
/// default /run/kata-swift), with their VM (backend, vCPUs, memory) and state: running while the
/// shim that owns the directory lives, stale once it is gone.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the sandboxes on this host, their VM and state.")

    @OptionGroup var location: SandboxDirectoryOptions

    @Flag(help: "Print JSON.")
    var json = false

    struct Entry: Encodable {
        var id: String
        var state: String
        var backend: String?
        var vcpus: Int?
        var memoryMiB: Int?
        var shimPID: Int32?
        var started: Int?
        /// What to do about it, when something is wrong.
        var fix: String?
    }

    func run() throws {
        let directory = try location.resolve(for: "list")
        let entries = Self.list(directory)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(entries), as: UTF8.self))
            return
        }
        guard !entries.isEmpty else {
            print("no sandboxes in \(directory)")
            return
        }
        print(["SANDBOX", "STATE", "BACKEND", "VCPUS", "MEMORY", "SHIM", "UP"].joined(separator: "\t"))
        let now = Int(Date().timeIntervalSince1970)
        for entry in entries {
            let vcpus: String = entry.vcpus.map { String($0) } ?? "-"
            let memory: String = entry.memoryMiB.map { "\($0) MiB" } ?? "-"
            let shim: String = entry.shimPID.map { String($0) } ?? "-"
            let up: String = entry.started.map { "\(max(0, now - $0)) s" } ?? "-"
            let columns: [String] = [entry.id, entry.state, entry.backend ?? "-", vcpus, memory, shim, up]
            print(columns.joined(separator: "\t"))
            if let fix = entry.fix { print("  \(fix)") }
        }
    }

    static func list(_ directory: String) -> [Entry] {
        SandboxRecord.list(sandboxDirectory: directory).map { id, record -> Entry in
            guard let record else {
                return Entry(id: id, state: "starting or stale", fix: "no VM recorded yet; if it stays, its shim is gone: `ctr task delete \(id)` (or delete the container) has containerd clean it up")
            }
            let alive = isShim(pid: record.shimPID)
            return Entry(
                id: id, state: alive ? "running" : "stale", backend: record.backend, vcpus: record.vcpus,
                memoryMiB: record.memoryMiB, shimPID: record.shimPID, started: record.started,
                fix: alive ? nil : "its shim (pid \(record.shimPID)) is gone: `ctr task delete \(id)` has containerd clean it up")
        }
    }

    /// Whether `pid` is a running containerd-shim-kata-v2.
    static func isShim(pid: Int32) -> Bool {
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe") else { return false }
        return exe.hasSuffix("/containerd-shim-kata-v2")
    }
}
