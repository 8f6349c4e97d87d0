import Foundation
import Testing
@testable import Shim

@Suite struct StdioTests {
    /// Reads from a FIFO as the client (ctr) would, until EOF.
    func readAll(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { return result }
            result += buffer[0..<n]
        }
    }

    @Test func fifoOutputOpensWithoutReaderAndDelivers() async throws {
        let directory = try TemporaryDirectory("stdio")
        defer { directory.remove() }
        let out = directory.path + "/out"
        #expect(mkfifo(out, 0o600) == 0)
        // No reader yet: opening must not block.
        let stdio = try StdioEndpoints.open(StdioRequest(stdout: out), containerID: "c", namespace: "n")
        let reader = Task.detached { readAll(out) }
        try await stdio.stdout?.write(Array("hello\n".utf8))
        await stdio.closeAll()
        // Our O_RDWR end is closed; the client sees EOF once it is the last end.
        #expect(String(decoding: await reader.value, as: UTF8.self) == "hello\n")
    }

    @Test func fifoStdinWaitsForWriterAndSeesEOF() async throws {
        let directory = try TemporaryDirectory("stdin")
        defer { directory.remove() }
        let path = directory.path + "/in"
        #expect(mkfifo(path, 0o600) == 0)
        let stdio = try StdioEndpoints.open(StdioRequest(stdin: path), containerID: "c", namespace: "n")
        let stdin = try #require(stdio.stdin)
        let writer = open(path, O_WRONLY | O_NONBLOCK)
        #expect(writer >= 0)
        _ = write(writer, "abc", 3)
        #expect(try await stdin.read(maxBytes: 100) == Array("abc".utf8))
        close(writer)
        #expect(try await stdin.read(maxBytes: 100) == [])
        await stdio.closeAll()
    }

    @Test func stdinCloseWakesPendingRead() async throws {
        let directory = try TemporaryDirectory("stdin-close")
        defer { directory.remove() }
        let path = directory.path + "/in"
        #expect(mkfifo(path, 0o600) == 0)
        let stdio = try StdioEndpoints.open(StdioRequest(stdin: path), containerID: "c", namespace: "n")
        let stdin = try #require(stdio.stdin)
        let pending = Task { try await stdin.read(maxBytes: 10) }  // no writer ever comes
        try await Task.sleep(for: .milliseconds(50))
        await stdin.close()
        #expect(try await pending.value == [])
    }

    @Test func finishDrainsBufferedInputThenEnds() async throws {
        let directory = try TemporaryDirectory("stdin-finish")
        defer { directory.remove() }
        let path = directory.path + "/in"
        #expect(mkfifo(path, 0o600) == 0)
        let stdio = try StdioEndpoints.open(StdioRequest(stdin: path), containerID: "c", namespace: "n")
        let stdin = try #require(stdio.stdin)
        let writer = open(path, O_WRONLY | O_NONBLOCK)
        defer { close(writer) }
        _ = write(writer, "left over", 9)  // the writer stays open: without finish, reads would wait
        await stdin.finish()
        #expect(try await stdin.read(maxBytes: 100) == Array("left over".utf8))
        #expect(try await stdin.read(maxBytes: 100) == [])
        await stdin.close()
    }

    @Test func fileURIAppends() async throws {
        let directory = try TemporaryDirectory("file")
        defer { directory.remove() }
        let log = directory.path + "/sub/log.txt"
        let stdio = try StdioEndpoints.open(StdioRequest(stdout: "file://" + log, stderr: "file://" + log),
                                            containerID: "c", namespace: "n")
        try await stdio.stdout?.write(Array("out\n".utf8))
        try await stdio.stderr?.write(Array("err\n".utf8))
        await stdio.closeAll()
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "out\nerr\n")
    }

    @Test func binaryURIRunsLoggerWithContainerdLayout() async throws {
        let directory = try TemporaryDirectory("binary")
        defer { directory.remove() }
        let script = directory.path + "/logger.sh"
        let result = directory.path + "/result"
        try """
        #!/bin/sh
        # a logging binary: fd 3 stdout, fd 4 stderr, fd 5 ready. It says ready only once its
        # readers run: the shim SIGTERMs the logger as soon as both streams close (as containerd
        # does), and a shell killed before it started its readers would lose the output.
        echo "args=$* id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE" > \(result).meta
        cat <&3 5>&- > \(result).out &
        cat <&4 5>&- > \(result).err &
        exec 5>&-
        wait
        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let stdio = try StdioEndpoints.open(
            StdioRequest(stdout: "binary://\(script)?-v=1&flag", stderr: "binary://\(script)"),
            containerID: "c9", namespace: "ns9")
        try await stdio.stdout?.write(Array("to-out".utf8))
        try await stdio.stderr?.write(Array("to-err".utf8))
        await stdio.closeAll()
        #expect(await eventually { (try? String(contentsOfFile: result + ".err", encoding: .utf8)) == "to-err" })
        #expect(await eventually { (try? String(contentsOfFile: result + ".out", encoding: .utf8)) == "to-out" })
        #expect(try String(contentsOfFile: result + ".meta", encoding: .utf8) == "args=-v 1 flag id=c9 ns=ns9\n")
    }

    @Test func terminalModeHasOneStream() throws {
        let directory = try TemporaryDirectory("tty")
        defer { directory.remove() }
        let out = directory.path + "/out", err = directory.path + "/err"
        #expect(mkfifo(out, 0o600) == 0 && mkfifo(err, 0o600) == 0)
        let stdio = try StdioEndpoints.open(StdioRequest(stdout: out, stderr: err, terminal: true),
                                            containerID: "c", namespace: "n")
        #expect(stdio.stdout != nil && stdio.stderr == nil && stdio.terminal)
        let null = try StdioEndpoints.open(StdioRequest(), containerID: "c", namespace: "n")
        #expect(null.stdin == nil && null.stdout == nil && null.stderr == nil)
        Task { await stdio.closeAll() }
    }

    @Test func badURIsAreRejected() {
        #expect(throws: StdioError.badURI("http://x/y")) {
            try StdioEndpoints.open(StdioRequest(stdout: "http://x/y"), containerID: "c", namespace: "n")
        }
        #expect(throws: StdioError.open(path: "/nonexistent/dir/fifo", errno: ENOENT)) {
            try StdioEndpoints.open(StdioRequest(stdout: "/nonexistent/dir/fifo"), containerID: "c", namespace: "n")
        }
    }
}
