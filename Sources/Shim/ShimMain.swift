// The executable's logic: parse the command line, then `start`, `delete`, `-v` or the daemon.

import ContainerdAPI
import SwiftProtobuf
import SystemSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

public enum ShimMain {
    public static let version = "containerd-shim-kata-v2 (kata-swift) 0.1.0, runtime io.containerd.kata.v2"

    /// Runs the shim with `arguments` (without the program name) and returns the exit status.
    /// `makeSandbox` builds the daemon's sandbox (the executable's: VMSandbox, or the test-only
    /// ScriptedSandbox).
    /// `cleanUpSandbox` removes what a dead shim left of its sandbox (`delete`).
    /// `warmPool` says where a pod's warm sandboxes wait, if the configuration asks for them.
    public static func run(
        arguments: [String], makeSandbox: @escaping SandboxFactory, cleanUpSandbox: SandboxCleanup? = nil,
        warmPool: WarmPoolLookup? = nil
    ) async -> Int32 {
        let flags: ShimFlags
        do {
            flags = try ShimFlags(parsing: arguments)
            try flags.validate()
        } catch {
            fail("\(error)")
            return 2
        }
        switch flags.action {
        case .version:
            write(Array((version + "\n").utf8), to: 1)
            return 0
        case .start:
            // Capabilities are per thread: dropped here, on the thread that spawns the daemon, the
            // daemon's exec gives every one of its threads the reduced set (a root process gets its
            // bounding set back at exec, no more).
            do {
                try ShimConfinement.limitCapabilities()
            } catch {
                fail("start: cannot drop capabilities: \(error)")
                return 1
            }
            do {
                let bundle = BundleDirectory(path: currentDirectory())
                let result = try StartCommand(flags: flags, bundle: bundle, warmPool: warmPool) { message in
                    appendLog(message, to: bundle)
                }.run()
                // containerd reads stdout and stderr merged: the address and nothing else.
                write(Array(result.address.utf8), to: 1)
                return 0
            } catch {
                fail("start: \(error)")
                return 1
            }
        case .delete:
            let bundle = BundleDirectory(path: flags.bundle.isEmpty ? currentDirectory() : flags.bundle)
            // Confined as the daemon is; delete must answer even where that fails.
            do { try ShimConfinement.apply() } catch { fail("delete: cannot confine the shim: \(error)") }
            do {
                let outcome = try DeleteCommand(
                    flags: flags, bundle: bundle, environment: currentEnvironmentByName(), cleanUpSandbox: cleanUpSandbox
                ).run()
                // containerd logs delete's stderr as "cleanup warnings": say what a dead shim left.
                if let cleaned = outcome.cleanedSandbox { fail("delete: \(cleaned)") }
            } catch {
                // stderr of delete is logged by containerd as "cleanup warnings"; still answer.
                fail("delete: \(error)")
            }
            let response = Containerd_Task_V2_DeleteResponse.with {
                $0.exitStatus = 128 + UInt32(SIGKILL)
                $0.exitedAt = Google_Protobuf_Timestamp(date: Date())
            }
            write((try? response.serializedBytes()) ?? [], to: 1)
            return 0
        case .daemon:
            return await Daemon.run(flags: flags, makeSandbox: makeSandbox)
        case .warm:
            return await WarmDaemon.run(flags: flags, makeSandbox: makeSandbox)
        }
    }

    /// One line for the operator in the bundle's log FIFO (containerd copies it to its own log);
    /// `start`'s stdout and stderr are the address only. Nothing is written when no reader is there.
    private static func appendLog(_ message: String, to bundle: BundleDirectory) {
        let fd = open(bundle.logPath, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return }
        try? writeAll(fd, Array("time=\"\(Date())\" level=info msg=\"containerd-shim-kata-v2 start: \(message)\"\n".utf8))
        close(fd)
    }

    private static func fail(_ message: String) {
        write(Array("containerd-shim-kata-v2: \(message)\n".utf8), to: 2)
    }

    private static func write(_ bytes: [UInt8], to fd: Int32) {
        try? writeAll(fd, bytes)
    }

    private static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard let pointer = buffer.withUnsafeMutableBufferPointer({ getcwd($0.baseAddress, $0.count) }) else { return "." }
        return String(cString: pointer)
    }
}
