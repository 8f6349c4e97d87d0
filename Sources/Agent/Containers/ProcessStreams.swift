// The standard streams of one container process as the agent holds them: pipes (the agent keeps
// the stdout/stderr read ends and the stdin write end; the child's ends are closed once it has
// them), or, for a terminal, dups of the pty master.
import GuestContainers
import Glibc

/// Pipes made before the process exists; `childStdio` is what the engine hands to the child.
/// Every descriptor it still holds is closed on deinit (error paths).
final class PendingStreams {
    private var agentEnds: [Int32]  // stdin write, stdout read, stderr read
    private var childEnds: [Int32]  // stdin read, stdout write, stderr write

    init() throws(AgentError) {
        var agent: [Int32] = []
        var child: [Int32] = []
        for i in 0..<3 {
            var fds: [Int32] = [-1, -1]
            // pipe + FD_CLOEXEC (pipe2 is hidden behind _GNU_SOURCE): a child cloned in between
            // closes every descriptor it does not need before it execs (ks_container.c).
            guard pipe(&fds) == 0 else {
                let e = errno
                for fd in agent + child { close(fd) }
                throw .system(operation: "pipe2", errno: e)
            }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            // stdin: the child reads fds[0]; stdout/stderr: the child writes fds[1].
            if i == 0 { child.append(fds[0]); agent.append(fds[1]) } else { child.append(fds[1]); agent.append(fds[0]) }
        }
        agentEnds = agent
        childEnds = child
    }

    var childStdio: ContainerStdio {
        .fds(stdin: childEnds[0], stdout: childEnds[1], stderr: childEnds[2])
    }

    /// The child has its copies (or failed): close ours of its ends. With `process`, returns the
    /// streams (a terminal process gets its pty instead, and the pipes are closed).
    func finish(_ process: ContainerProcess?) throws(AgentError) -> ProcessStreams? {
        for fd in childEnds { close(fd) }
        let agent = agentEnds
        childEnds = []
        agentEnds = []
        guard let process else {
            for fd in agent { close(fd) }
            return nil
        }
        if let master = process.terminalMaster {
            for fd in agent { close(fd) }
            return try ProcessStreams.terminal(master)
        }
        let stdin = StdinWriter(fd: agent[0], terminal: false)
        let stdout: OutputBuffer
        do {
            stdout = try OutputBuffer.reading(agent[1])
        } catch {
            close(agent[2])
            throw error
        }
        let stderr = try OutputBuffer.reading(agent[2])
        return ProcessStreams(stdin: stdin, stdout: stdout, stderr: stderr)
    }

    deinit {
        for fd in childEnds + agentEnds { close(fd) }
    }
}

struct ProcessStreams: Sendable {
    let stdin: StdinWriter
    let stdout: OutputBuffer
    let stderr: OutputBuffer

    /// Output and input both go through the pty master (the process still owns the original).
    static func terminal(_ master: Int32) throws(AgentError) -> ProcessStreams {
        let readEnd = fcntl(master, F_DUPFD_CLOEXEC, 3)
        guard readEnd >= 0 else { throw .system(operation: "dup pty master", errno: errno) }
        let writeEnd = fcntl(master, F_DUPFD_CLOEXEC, 3)
        guard writeEnd >= 0 else {
            let e = errno
            close(readEnd)
            throw .system(operation: "dup pty master", errno: e)
        }
        let stdin = StdinWriter(fd: writeEnd, terminal: true)
        return ProcessStreams(stdin: stdin, stdout: try OutputBuffer.reading(readEnd), stderr: OutputBuffer.ended())
    }
}
