// One guest process seen from the host: its stdio pumps and its exit.
//   stdout/stderr: ReadStdout/ReadStderr long-polls → StdioWriter, until the empty reply (EOF);
//                  output is read even with no host stream, so the guest never blocks on it.
//   stdin:         StdioReader → WriteStdin, then CloseStdin once the reader ends.
//   exit:          WaitProcess, then both output pumps at EOF, then the status is reported.
// When the VM is gone every pending call fails; the process then exits with status 255.

import AgentAPI
import Logging
import Shim
import TTRPC

/// A process of a container: exec_id "" is the container's init.
final class GuestProcess: @unchecked Sendable {
    // Guarded by the VMSandbox actor: every field below is touched only on it.
    let containerID: String
    let execID: String
    let stdio: ProcessStdio
    /// The exec's process JSON, sent by ExecProcess at start (nil for the init).
    let execJSON: [UInt8]?
    var guestPID: UInt32 = 0
    var started = false
    var stdinDone = false
    var exitStatus: UInt32?
    var waiters: [CheckedContinuation<UInt32, Never>] = []
    var stdinPump: Task<Void, Never>?

    init(containerID: String, execID: String, stdio: ProcessStdio, execJSON: [UInt8]?) {
        self.containerID = containerID
        self.execID = execID
        self.stdio = stdio
        self.execJSON = execJSON
    }

    var name: String { execID.isEmpty ? containerID : "\(containerID)/\(execID)" }
}

/// The status reported when the VM (or the agent connection) disappears under a process.
let vmGoneExitStatus: UInt32 = 255

enum ProcessIO {
    static let readChunk: UInt32 = 32 * 1024

    /// Reads one output stream until EOF or a failed call; closes `writer` at the end.
    static func pumpOutput(
        agent: Kata_Agent_V1_AgentServiceClient, process: GuestProcess, stderr: Bool, writer: (any StdioWriter)?,
        logger: Logger
    ) async {
        let request = Kata_Agent_V1_ReadStreamRequest.with {
            $0.containerID = process.containerID
            $0.execID = process.execID
            $0.len = readChunk
        }
        var writerBroken = false
        while true {
            let data: [UInt8]
            do {
                data = Array(try await stderr ? agent.readStderr(request).data : agent.readStdout(request).data)
            } catch {
                logger.debug("\(process.name): \(stderr ? "ReadStderr" : "ReadStdout") ended: \(error)")
                break
            }
            if data.isEmpty { break }
            guard let writer, !writerBroken else { continue }
            do {
                try await writer.write(data)
            } catch {
                // The host side went away (containerd closed the FIFO): keep draining the guest.
                logger.debug("\(process.name): host \(stderr ? "stderr" : "stdout") closed: \(error)")
                writerBroken = true
            }
        }
        await writer?.close()
    }

    /// Copies the host's stdin into the guest until it ends, then closes the guest's stdin.
    static func pumpInput(agent: Kata_Agent_V1_AgentServiceClient, process: GuestProcess, reader: any StdioReader, logger: Logger) async {
        while !Task.isCancelled {
            let chunk: [UInt8]
            do {
                chunk = try await reader.read(maxBytes: Int(readChunk))
            } catch {
                logger.debug("\(process.name): host stdin failed: \(error)")
                break
            }
            if chunk.isEmpty { break }
            do {
                _ = try await agent.writeStdin(.with {
                    $0.containerID = process.containerID
                    $0.execID = process.execID
                    $0.data = .init(chunk)
                })
            } catch {
                logger.debug("\(process.name): WriteStdin failed: \(error)")
                return
            }
        }
        if Task.isCancelled { return }
        do {
            _ = try await agent.closeStdin(.with {
                $0.containerID = process.containerID
                $0.execID = process.execID
            })
        } catch {
            logger.debug("\(process.name): CloseStdin failed: \(error)")
        }
    }

    /// Runs the process's pumps and returns its status once it exited and its output is drained.
    static func run(agent: Kata_Agent_V1_AgentServiceClient, process: GuestProcess, logger: Logger) async -> UInt32 {
        let terminal = process.stdio.terminal
        async let stdout: Void = pumpOutput(
            agent: agent, process: process, stderr: false, writer: process.stdio.stdout, logger: logger)
        async let stderr: Void = pumpOutput(
            agent: agent, process: process, stderr: true, writer: terminal ? nil : process.stdio.stderr, logger: logger)
        var status = vmGoneExitStatus
        do {
            let reply = try await agent.waitProcess(.with {
                $0.containerID = process.containerID
                $0.execID = process.execID
            })
            status = reply.status >= 0 ? UInt32(reply.status) : vmGoneExitStatus
        } catch {
            logger.error("\(process.name): WaitProcess failed: \(error); reporting status \(vmGoneExitStatus)")
        }
        _ = await (stdout, stderr)
        return status
    }
}
