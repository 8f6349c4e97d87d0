// What the real-VM tests of the runtime share: the guest images, a configuration pointing at
// them, a busybox bundle, in-memory stdio, and the leak checks (no QEMU child, no mount, no
// socket, no sandbox directory, no descriptor left).

import Foundation
import Logging
import NIOPosix
import OCI
import Shim
@testable import Runtime

enum VMFixture {
    struct FixtureError: Error, CustomStringConvertible { var description: String }

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// $KATA_GUEST_KERNEL / $KATA_AGENT_INITRD (set by `make test`), else build/guest of this
    /// checkout (`make kernel agent-initramfs`).
    static func images() throws -> (kernel: String, initrd: String) {
        let environment = ProcessInfo.processInfo.environment
        let kernel = environment["KATA_GUEST_KERNEL"].flatMap { $0.isEmpty ? nil : $0 }
            ?? repositoryRoot + "/build/guest/vmlinux"
        let initrd = environment["KATA_AGENT_INITRD"].flatMap { $0.isEmpty ? nil : $0 }
            ?? repositoryRoot + "/build/guest/initramfs-agent.cpio"
        guard access(kernel, R_OK) == 0, access(initrd, R_OK) == 0 else {
            throw FixtureError(description: "guest kernel \(kernel) or agent initramfs \(initrd) missing: run `make kernel agent-initramfs`")
        }
        return (kernel, initrd)
    }

    /// A configuration for the test images, with its own sandbox directory.
    static func config(dialTimeout: Int = 120, kernelParams: [String] = [], debugConsole: Bool = false) throws -> RuntimeConfig {
        let (kernel, initrd) = try images()
        var config = RuntimeConfig()
        config.kernel = kernel
        config.initrd = initrd
        config.kernelParams = kernelParams
        config.agentDialTimeoutSeconds = dialTimeout
        config.debugConsole = debugConsole
        config.sandboxDirectory = "/run/kata-swift-test-\(getpid())"
        return config
    }

    /// The same configuration as a file (for VMSandbox, which reads its own).
    static func writeConfigFile(_ config: RuntimeConfig, to path: String) throws {
        let text = """
            [hypervisor.\(config.backend == .kvm ? "kvm" : "qemu")]
            kernel = "\(config.kernel)"
            initrd = "\(config.initrd)"
            default_memory = \(config.memoryMiB)
            kernel_params = "\(config.kernelParams.joined(separator: " "))"
            [agent.kata]
            debug_console_enabled = \(config.debugConsole)
            dial_timeout = \(config.agentDialTimeoutSeconds)
            [runtime]
            hypervisor_name = "\(config.backend)"
            sandbox_dir = "\(config.sandboxDirectory)"
            """
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static var logger: Logger {
        var logger = Logger(label: "runtime-test")
        logger.logLevel = .info
        return logger
    }

    /// Pids of QEMU processes that are children of this test process.
    /// QEMU processes started by this process: children of our guard processes (ks_hv_spawn_guarded).
    static func qemuChildren() -> [Int32] {
        let me = getpid()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        func parent(_ pid: Int32) -> Int32? {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 ? Int32(fields[1]) : nil
        }
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let guardPID = parent(pid), parent(guardPID) == me else { return false }
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            return comm.hasPrefix("qemu")
        }
    }

    static func mounts(below directory: String) -> [String] {
        SandboxPaths.mountPoints(below: directory)
    }

    static func openDescriptors() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
    }

    /// Opens the lazily created process-wide descriptors (NIO loops, timers) before counting.
    static func warmUp() async throws {
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            try await loop.scheduleTask(in: .milliseconds(1)) {}.futureResult.get()
        }
        try await Task.sleep(for: .milliseconds(1))
    }

    /// Polls `condition` for up to `seconds`.
    static func eventually(seconds: Double = 10, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }
}

/// Collects a process's output.
actor CollectingWriter: StdioWriter {
    private(set) var bytes: [UInt8] = []
    private(set) var closed = false
    var text: String { String(decoding: bytes, as: UTF8.self) }

    func write(_ bytes: [UInt8]) async throws { self.bytes += bytes }
    func close() async { closed = true }

    /// Waits until the output contains `needle` (or `seconds` pass).
    func waitFor(_ needle: String, seconds: Double = 30) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < deadline {
            if text.contains(needle) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return text.contains(needle)
    }
}

/// Stdin fed by the test: `send` chunks, then `finish()`.
actor FeedingReader: StdioReader {
    private var chunks: [[UInt8]] = []
    private var ended = false
    private var waiter: CheckedContinuation<Void, Never>?

    func send(_ text: String) {
        chunks.append(Array(text.utf8))
        waiter?.resume()
        waiter = nil
    }

    func read(maxBytes: Int) async throws -> [UInt8] {
        while chunks.isEmpty && !ended { await withCheckedContinuation { waiter = $0 } }
        if chunks.isEmpty { return [] }
        var chunk = chunks.removeFirst()
        if chunk.count > maxBytes {
            chunks.insert(Array(chunk[maxBytes...]), at: 0)
            chunk = Array(chunk[..<maxBytes])
        }
        return chunk
    }

    func finish() async {
        ended = true
        waiter?.resume()
        waiter = nil
    }

    func close() async {
        chunks = []
        await finish()
    }
}

/// A bundle with a busybox rootfs and a config.json running `args`.
struct BusyboxBundle {
    let path: String
    var rootfs: String { path + "/rootfs" }

    init(name: String, args: [String], terminal: Bool = false) throws {
        path = "/tmp/ks-runtime-bundle-\(name)-\(getpid())"
        let fm = FileManager.default
        try? fm.removeItem(atPath: path)
        for directory in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            try fm.createDirectory(atPath: rootfs + "/" + directory, withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/bin/busybox")
        for applet in ["sh", "echo", "cat", "sleep", "true", "false", "ls", "ps", "id", "uname", "head", "wc", "stty"] {
            try fm.createSymbolicLink(atPath: rootfs + "/bin/" + applet, withDestinationPath: "busybox")
        }
        let spec: [String: Any] = [
            "ociVersion": "1.0.2",
            "process": [
                "terminal": terminal, "user": ["uid": 0, "gid": 0], "args": args,
                "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/",
            ],
            "root": ["path": "rootfs", "readonly": false],
            "hostname": "ks-\(name)",
            "mounts": [
                ["destination": "/proc", "type": "proc", "source": "proc"],
                ["destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]],
                ["destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]],
                ["destination": "/etc/hostname", "type": "bind", "source": "/etc/hostname", "options": ["rbind", "ro"]],
            ],
            "linux": ["namespaces": [["type": "pid"], ["type": "mount"], ["type": "ipc"], ["type": "uts"]]],
        ]
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: path + "/config.json"))
    }

    func containerConfig(id: String, stdio: ProcessStdio, configPath: String) throws -> ContainerConfig {
        let json = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "/config.json")))
        return ContainerConfig(id: id, bundle: path, rootfs: rootfs, spec: try OCISpec(json: json), stdio: stdio,
                               configPath: configPath)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
