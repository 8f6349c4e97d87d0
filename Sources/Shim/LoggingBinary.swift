// binary:///path?k=v stdio (cd pkg/process/io.go NewBinaryIO): a logging program started with the
// process's stdout on fd 3, its stderr on fd 4 and a ready pipe on fd 5, and CONTAINER_ID /
// CONTAINER_NAMESPACE in its environment. It is ready when it writes to or closes fd 5. When both
// streams are closed it gets SIGTERM, and SIGKILL 12 s later if it is still there.

import CSupport
import Dispatch
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A running logging binary.
final class LoggingBinary: Sendable {
    private let pid: pid_t
    private let openStreams = Mutex(2)
    private let exited = Mutex(false)

    private init(pid: pid_t) {
        self.pid = pid
    }

    /// Starts the binary and waits (up to `readyTimeout` seconds) until it is ready; returns the
    /// writers for stdout and stderr.
    static func start(
        path: String, arguments: [String], containerID: String, namespace: String, readyTimeout: Int32 = 10
    ) throws -> (FDWriter, FDWriter) {
        var pipes: [[Int32]] = []
        defer { for pipe in pipes { for fd in pipe where fd >= 0 { close(fd) } } }
        for _ in 0..<3 {
            var fds: [Int32] = [-1, -1]
            let rc = fds.withUnsafeMutableBufferPointer { ks_pipe_cloexec($0.baseAddress) }
            guard rc == 0 else { throw StdioError.pipe(errno: -rc) }
            pipes.append(fds)
        }
        var environment = currentEnvironment().filter { !$0.hasPrefix("CONTAINER_ID=") && !$0.hasPrefix("CONTAINER_NAMESPACE=") }
        environment += ["CONTAINER_ID=\(containerID)", "CONTAINER_NAMESPACE=\(namespace)"]
        let pid = try spawnProcess(
            path: path, arguments: arguments, environment: environment,
            fds: [nil, nil, nil, pipes[0][0], pipes[1][0], pipes[2][1]], newProcessGroup: false)
        let binary = LoggingBinary(pid: pid)
        binary.reapInBackground()
        close(pipes[2][1])
        pipes[2][1] = -1
        var ready = pollfd(fd: pipes[2][0], events: Int16(POLLIN), revents: 0)
        var rc: Int32
        repeat { rc = poll(&ready, 1, readyTimeout * 1000) } while rc < 0 && errno == EINTR
        guard rc > 0 else {
            binary.terminate()
            throw StdioError.loggerNotReady(path: path, reason: rc == 0 ? "no signal on fd 5 within \(readyTimeout) s" : "\(Errno(errno))")
        }
        let stdout = FDWriter(fd: pipes[0][1], label: "\(containerID).logger.stdout") { binary.streamClosed() }
        let stderr = FDWriter(fd: pipes[1][1], label: "\(containerID).logger.stderr") { binary.streamClosed() }
        pipes[0][1] = -1
        pipes[1][1] = -1
        return (stdout, stderr)
    }

    private func streamClosed() {
        let remaining = openStreams.withLock { count in
            count -= 1
            return count
        }
        if remaining == 0 { terminate() }
    }

    private func terminate() {
        guard !exited.withLock({ $0 }) else { return }
        kill(pid, SIGTERM)
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(12)) { [self] in
            if !exited.withLock({ $0 }) { kill(pid, SIGKILL) }
        }
    }

    private func reapInBackground() {
        let pid = self.pid
        DispatchQueue(label: "kata-swift.logger.reaper.\(pid)").async { [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            exited.withLock { $0 = true }
        }
    }
}
