// The debug console on the host: a DebugConsole on a Unix socket running the host's /bin/sh, and
// the real kata-agent binary with --debug-console. The guest path (vsock 1026, busybox, kata-ctl
// exec through the hybrid socket) is in Tests/AgentChannelTests/DebugConsoleExecTests.swift.

import CSupport
import Foundation
import Testing

@testable import Agent

@Suite struct DebugConsoleConfigTests {
    @Test func offUnlessTheKernelCommandLineAsks() throws {
        let none = try AgentConfig.resolve(arguments: [], environment: [:], kernelCommandLine: "console=ttyS0")
        #expect(none.debugConsole == nil)
        for off in ["agent.debug_console=0", "agent.debug_console=off", "agent.debug_console_vport=2000"] {
            #expect(try AgentConfig.resolve(arguments: [], environment: [:], kernelCommandLine: off).debugConsole == nil)
        }
    }

    @Test func kernelParameterTurnsItOnAtPort1026OrTheGivenPort() throws {
        let on = try AgentConfig.resolve(arguments: [], environment: [:], kernelCommandLine: "quiet agent.debug_console")
        #expect(on.debugConsole == .vsock(cid: nil, port: 1026))
        let port = try AgentConfig.resolve(
            arguments: [], environment: [:], kernelCommandLine: "agent.debug_console=1 agent.debug_console_vport=2222")
        #expect(port.debugConsole == .vsock(cid: nil, port: 2222))
    }

    @Test(arguments: ["x", "0", "-1", "4294967295", "99999999999"])
    func rejectsBadPorts(_ text: String) {
        #expect(throws: AgentConfigError.invalidDebugConsolePort(text)) {
            try AgentConfig.resolve(
                arguments: [], environment: [:], kernelCommandLine: "agent.debug_console agent.debug_console_vport=\(text)")
        }
    }

    @Test func flagSetsAnyAddress() throws {
        let config = try AgentConfig.resolve(
            arguments: ["--debug-console", "unix:///tmp/console.sock"], environment: [:], kernelCommandLine: "")
        #expect(config.debugConsole == .unix(path: "/tmp/console.sock"))
        #expect(throws: AgentConfigError.self) {
            try AgentConfig.resolve(arguments: ["--debug-console", "tcp://x"], environment: [:], kernelCommandLine: "")
        }
    }
}

@Suite(.serialized) struct DebugConsoleTests {
    static func socketPath() -> String { "/tmp/ks-dc-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock" }

    static let hostShell = DebugConsole.Shell(
        path: "/bin/sh", arguments: ["sh"], environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=vt100", "PS1=$ "])

    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    @Test(.timeLimit(.minutes(1)))
    func shellRunsOnItsOwnPtyAsSessionLeaderAndEndsWithTheConnection() throws {
        let path = Self.socketPath()
        let console = try DebugConsole(on: .unix(path: path), shell: Self.hostShell, log: AgentLog())
        defer { console.stop() }
        let client = try ConsoleClient(path: path)
        // $$'s session id (field 6 of /proc/self/stat) is its own pid: a session leader; `tty`
        // names its controlling pty; the environment is the one configured.
        try client.send("echo hello; tty; test \"$(cut -d' ' -f6 /proc/$$/stat)\" = \"$$\" && echo leader-ok; echo \"T=$TERM\"; exit\n")
        let output = try client.readToEnd()
        #expect(output.contains("hello\r\n"))
        #expect(output.contains("/dev/pts/"))
        #expect(output.contains("leader-ok\r\n"))
        #expect(output.contains("T=vt100\r\n"))
    }

    @Test(.timeLimit(.minutes(1)))
    func closingTheConnectionHangsUpAndReapsTheShell() throws {
        let path = Self.socketPath()
        let console = try DebugConsole(on: .unix(path: path), shell: Self.hostShell, log: AgentLog())
        defer { console.stop() }
        let client = try ConsoleClient(path: path)
        try client.send("echo pid=$$; sleep 600\n")
        let pid = try #require(try client.readPid())
        #expect(kill(pid, 0) == 0)
        client.close()
        // The session SIGHUPs the shell and reaps it through its pidfd: no zombie is left.
        #expect(waitUntilGone(pid), "shell \(pid) still exists after the hangup")
    }

    @Test(.timeLimit(.minutes(1)))
    func aShellIgnoringHangupIsKilled() throws {
        let path = Self.socketPath()
        let console = try DebugConsole(on: .unix(path: path), shell: Self.hostShell, log: AgentLog())
        defer { console.stop() }
        let client = try ConsoleClient(path: path)
        // exec: the session's process itself ignores SIGHUP and never touches the dead pty.
        try client.send("echo pid=$$; trap '' HUP; exec sleep 600\n")
        let pid = try #require(try client.readPid())
        for _ in 0..<250 where (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) != "sleep\n" {
            usleep(20_000)
        }
        let t0 = ContinuousClock.now
        client.close()
        usleep(500_000)
        #expect(kill(pid, 0) == 0, "gone before the grace period")
        #expect(waitUntilGone(pid, seconds: 10), "shell \(pid) survived SIGKILL")
        let elapsed = ContinuousClock.now - t0
        #expect(elapsed >= .milliseconds(Int(DebugConsoleSession.hangupGraceMs)), "\(elapsed)")
    }

    @Test(.timeLimit(.minutes(1)))
    func stopEndsLiveSessionsAndLeavesNothing() throws {
        let before = Self.openDescriptors()
        let path = Self.socketPath()
        let console = try DebugConsole(on: .unix(path: path), shell: Self.hostShell, log: AgentLog())
        let clients = try (0..<2).map { _ in try ConsoleClient(path: path) }
        var pids: [Int32] = []
        for client in clients {
            try client.send("echo pid=$$; sleep 600\n")
            pids.append(try #require(try client.readPid()))
        }
        console.stop()
        for pid in pids { #expect(waitUntilGone(pid), "shell \(pid) left running") }
        for client in clients { #expect(try client.readToEnd(seconds: 5) != "timeout") }
        clients.forEach { $0.close() }
        #expect(access(path, F_OK) != 0, "socket file left behind")
        #expect(Self.openDescriptors() <= before)
        console.stop()  // idempotent
    }

    @Test(.timeLimit(.minutes(1)))
    func outputLargerThanEveryBufferArrivesWhole() throws {
        let path = Self.socketPath()
        let console = try DebugConsole(on: .unix(path: path), shell: Self.hostShell, log: AgentLog())
        defer { console.stop() }
        let client = try ConsoleClient(path: path)
        // ~1.1 MB through the pty and the relay's 64 KiB buffers, read slowly at first.
        try client.send("seq 1 150000; echo done-$((6*7)); exit\n")
        usleep(300_000)
        let output = try client.readToEnd(seconds: 50)
        #expect(output.contains("\r\n149999\r\n150000\r\n"))
        #expect(output.contains("done-42\r\n"))
    }

    @Test(.timeLimit(.minutes(1)))
    func aShellThatCannotStartIsReportedToTheClient() throws {
        let path = Self.socketPath()
        let missing = DebugConsole.Shell(path: "/nonexistent/sh", arguments: ["sh"], environment: [])
        let console = try DebugConsole(on: .unix(path: path), shell: missing, log: AgentLog())
        defer { console.stop() }
        let client = try ConsoleClient(path: path)
        let output = try client.readToEnd()
        #expect(output.contains("cannot start /nonexistent/sh: No such file or directory"))
    }

    @Test func listenFailureIsAnError() {
        #expect(throws: DebugConsoleError.self) {
            _ = try DebugConsole(on: .unix(path: "/nonexistent-dir/x.sock"), shell: Self.hostShell, log: AgentLog())
        }
    }

    /// The real binary: --debug-console, a session, SIGTERM while it is open.
    @Test(.timeLimit(.minutes(2)))
    func agentBinaryServesTheConsoleAndStopsWithASessionOpen() async throws {
        let socket = AgentBinaries.socketPath()
        let consolePath = Self.socketPath()
        let agent = try WatchedProcess(
            executable: try AgentBinaries.debugAgent(),
            arguments: ["--listen", "unix://\(socket)", "--debug-console", "unix://\(consolePath)"])
        try #require(await agent.waitForLine(containing: "listening on unix://\(socket)"))
        #expect(agent.log.contains("debug console listening on unix://\(consolePath)"))
        let client = try ConsoleClient(path: consolePath)
        try client.send("echo pid=$$; sleep 600\n")
        let pid = try #require(try client.readPid())
        #expect(await agent.stop() == 0)
        #expect(waitUntilGone(pid), "shell \(pid) outlived the agent")
        #expect(agent.log.contains("session 1: console stopped"))
        client.close()
        #expect(access(consolePath, F_OK) != 0)
    }
}

/// Polls until `pid` no longer exists (not even as a zombie).
func waitUntilGone(_ pid: Int32, seconds: Int = 5) -> Bool {
    for _ in 0..<(seconds * 50) {
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        usleep(20_000)
    }
    return false
}

/// A raw client of the console: bytes in, bytes out, with deadlines.
final class ConsoleClient {
    let fd: Int32
    private var received: [UInt8] = []
    private var closed = false

    struct Failure: Error, CustomStringConvertible { var description: String }

    init(path: String) throws {
        let rc = ks_unix_connect(path)
        guard rc >= 0 else { throw Failure(description: "connect \(path): errno \(-rc)") }
        fd = rc
    }

    deinit { close() }

    func close() {
        if !closed { Glibc.close(fd) }
        closed = true
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n == bytes.count else { throw Failure(description: "send: \(n)") }
    }

    /// Reads until the text seen so far matches, or EOF, or the deadline. True when it matched.
    private func read(until done: (String) -> Bool, seconds: Int) -> (matched: Bool, eof: Bool) {
        let end = ContinuousClock.now + .seconds(seconds)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !done(String(decoding: received, as: UTF8.self)) {
            guard ContinuousClock.now < end else { return (false, false) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) >= 0 else { return (false, false) }
            if p.revents == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return (false, true) }
            received += buffer[0..<n]
        }
        return (true, false)
    }

    /// Everything until the console closes the connection ("timeout" if it does not in time).
    func readToEnd(seconds: Int = 20) throws -> String {
        let r = read(until: { _ in false }, seconds: seconds)
        return r.eof ? String(decoding: received, as: UTF8.self) : "timeout"
    }

    /// The number printed as `pid=N` (after the echoed command line).
    func readPid(seconds: Int = 20) throws -> Int32? {
        let pattern = #/pid=([0-9]+)\r\n/#
        _ = read(until: { $0.firstMatch(of: pattern) != nil }, seconds: seconds)
        let text = String(decoding: received, as: UTF8.self)
        return text.firstMatch(of: pattern).flatMap { Int32($0.1) }
    }
}
