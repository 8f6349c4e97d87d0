// `kata-ctl exec` end to end: our kernel and agent booted by the `auto` backend with a hybrid
// vsock socket at /run/kata-swift/<sandbox-id>/hvsock, the built kata-ctl binary run against it
// with stdin piped; once with `agent.debug_console` on the kernel command line (a busybox shell
// answers), once without (exec fails with a clear message). Plus the errors that need no VM.

import CSupport
import Glibc
import Hypervisor
import Testing

@Suite(.serialized) struct DebugConsoleExecTests {
    static let runtimeRoot = "/run/kata-swift"

    @Test(.timeLimit(.minutes(10)))
    func execRunsCommandsInTheGuestShell() async throws {
        try await withSandbox(debugConsole: true) { id, vm in
            let t0 = ContinuousClock.now
            let run = try KataCtl.run(["exec", id], stdin: "echo hello-$((6*7)); uname -r; exit\n")
            print("debug-console: kata-ctl exec took \(ContinuousClock.now - t0) (\(vm.kind)); output:\n\(run.output)")
            #expect(run.status == 0, "kata-ctl exec: \(run.output)")
            #expect(run.output.contains("hello-42"))
            #expect(run.output.split(whereSeparator: \.isNewline).contains { $0.hasSuffix("-kata-swift") },
                    "no guest kernel release in: \(run.output)")

            // A second session on the same console; stdin ends without `exit`: kata-ctl types ^D
            // and `exit` and the shell ends; the session runs in the guest's root namespaces as PID 1's child.
            let second = try KataCtl.run(["exec", id], stdin: "cat /proc/$$/status | grep PPid; readlink /bin/sh\n")
            #expect(second.status == 0, "second session: \(second.output)")
            #expect(second.output.contains("PPid:\t1"), "\(second.output)")
            #expect(second.output.contains("/bin/busybox\r\n"), "\(second.output)")
        }
    }

    @Test(.timeLimit(.minutes(10)))
    func execFailsClearlyWhenTheGuestHasNoDebugConsole() async throws {
        try await withSandbox(debugConsole: false) { id, _ in
            let run = try KataCtl.run(["exec", id], stdin: "uname -r\n")
            #expect(run.status == 1)
            #expect(run.output.contains("the guest refused vsock port 1026"), "\(run.output)")
            #expect(run.output.contains("agent.debug_console"), "\(run.output)")
        }
    }

    @Test func execFailsClearlyWithoutASandbox() throws {
        let id = "no-such-sandbox-\(getpid())"
        let missing = try KataCtl.run(["exec", id], stdin: "")
        #expect(missing.status == 1)
        #expect(missing.output.contains("no sandbox '\(id)' on this host"), "\(missing.output)")

        // The sandbox exists but its configuration exposes no hybrid socket.
        let directory = "\(Self.runtimeRoot)/\(id)"
        mkdir(Self.runtimeRoot, 0o711)
        #expect(mkdir(directory, 0o700) == 0)
        defer { rmdir(directory) }
        let noSocket = try KataCtl.run(["exec", id], stdin: "")
        #expect(noSocket.status == 1)
        #expect(noSocket.output.contains("has no hybrid vsock socket"), "\(noSocket.output)")

        // A stale socket file: nothing listens.
        let stale = directory + "/hvsock"
        let fd = ks_unix_listen(stale, 1, 0, 0)
        #expect(fd >= 0)
        close(fd)
        defer { unlink(stale) }
        let refused = try KataCtl.run(["exec", id], stdin: "")
        #expect(refused.status == 1)
        #expect(refused.output.contains("nothing listens on \(stale)"), "\(refused.output)")

        let bad = try KataCtl.run(["exec", "../etc"], stdin: "")
        #expect(bad.status == 1 && bad.output.contains("invalid sandbox id"), "\(bad.output)")
    }

    /// Boots a VM whose hybrid vsock socket sits where `kata-ctl exec <id>` looks for it, waits
    /// for the agent, runs `body`, stops the VM and checks that nothing is left behind.
    func withSandbox(
        debugConsole: Bool, _ body: (String, any Hypervisor) async throws -> Void
    ) async throws {
        signal(SIGPIPE, SIG_IGN)
        let paths = try AgentImage.paths()
        let id = "dc-test-\(getpid())-\(debugConsole ? "on" : "off")"
        let runtime = "\(Self.runtimeRoot)/\(id)"
        mkdir(Self.runtimeRoot, 0o711)
        mkdir(runtime, 0o700)
        defer { rmdir(runtime) }
        let hybrid = runtime + "/hvsock"
        let config = HypervisorConfig(
            kernelPath: paths.kernel, initrdPath: paths.initrd,
            cmdlineExtras: debugConsole ? ["agent.debug_console"] : [], memoryMiB: 256, backend: .auto,
            runtimeDirectory: runtime, hybridVsockPath: hybrid)
        let vm = try HypervisorFactory.make(config)
        try await vm.start()
        do {
            // The agent is up once its ttrpc port answers; it opens the console before that port.
            _ = try await vm.connectVsock(port: 1024, timeoutSeconds: 240)
            try await body(id, vm)
        } catch {
            print("debug-console: console tail:\n\(vm.consoleTail)")
            await vm.stop()
            throw error
        }
        let tail = vm.consoleTail
        await vm.stop()
        if debugConsole {
            #expect(tail.contains("debug console listening on vsock://-1:1026"), "\(tail)")
            #expect(tail.contains("session 1: shell ended"), "\(tail)")
        } else {
            #expect(!tail.contains("debug console listening"))
        }
        var st = stat()
        #expect(lstat(hybrid, &st) != 0, "hybrid socket left behind")
        #expect(KataCtl.leftoverProcesses().isEmpty, "kata-ctl left running: \(KataCtl.leftoverProcesses())")
    }
}

/// The built kata-ctl binary, run as a user would run it.
enum KataCtl {
    struct Run { var status: Int32; var output: String }

    /// kata-ctl next to this test bundle (the same build directory), built if missing.
    static func binary() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        var directory = n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        while !directory.isEmpty && !directory.hasSuffix("/debug") && !directory.hasSuffix("/release") {
            directory = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
        }
        let path = directory + "/kata-ctl"
        if access(path, X_OK) != 0 {
            _ = try AgentImage.shell("cd \(AgentImage.repoRoot()) && swift build --product kata-ctl >/dev/null 2>&1 && echo ok")
        }
        guard access(path, X_OK) == 0 else { throw AgentImage.ImageError(description: "kata-ctl not built at \(path)") }
        return path
    }

    /// Runs `kata-ctl <arguments>` with `stdin` piped in; stdout and stderr together. A watchdog
    /// (`timeout`) makes a hung session fail the test instead of hanging it.
    static func run(_ arguments: [String], stdin: String, seconds: Int = 120) throws -> Run {
        let input = "/tmp/kata-ctl-stdin-\(getpid())"
        let fd = open(input, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = Array(stdin.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { unlink(input) }
        let command = ([try binary()] + arguments).map { "'\($0)'" }.joined(separator: " ")
        let output = try AgentImage.shell("timeout -s KILL \(seconds) \(command) < \(input) 2>&1; echo \"status=$?\"")
        guard let range = output.ranges(of: "status=").last, let status = Int32(output[range.upperBound...]) else {
            throw AgentImage.ImageError(description: "no status in \(output)")
        }
        return Run(status: status, output: String(output[..<range.lowerBound]))
    }

    /// kata-ctl processes still running (there should be none once a run returned).
    static func leftoverProcesses() -> String {
        (try? AgentImage.shell("pgrep -a -f '[/]kata-ctl exec' || true")) ?? ""
    }
}

/// kata-ctl on a terminal: raw while the session runs, restored however it ends. A fake hybrid
/// socket stands in for the sandbox (the handshake is the same); the terminal is a pty whose
/// slave is kata-ctl's stdin, stdout and stderr.
@Suite(.serialized) struct ExecTerminalTests {
    enum Ending { case remoteCloses, escapeKey, sigterm }

    @Test(.timeLimit(.minutes(2)), arguments: [Ending.remoteCloses, .escapeKey, .sigterm])
    func terminalIsRawDuringTheSessionAndRestoredAfter(_ ending: Ending) throws {
        var master: Int32 = -1
        var slave: Int32 = -1
        #expect(ks_console_openpty(24, 80, &master, &slave) == 0)
        defer { close(master); close(slave) }
        var before = termios()
        #expect(tcgetattr(slave, &before) == 0)
        #expect(before.c_lflag & tcflag_t(ICANON) != 0)

        let path = "/tmp/ks-fake-hvsock-\(getpid())"
        unlink(path)
        let listener = ks_unix_listen(path, 1, 0, 0)
        #expect(listener >= 0)
        defer { close(listener); unlink(path) }

        let pid = try KataCtl.spawn(["exec", "fake", "--socket", path], terminal: slave)
        let conn = accept(listener, nil, nil)
        #expect(conn >= 0)
        defer { close(conn) }
        #expect(DebugConsoleExecTests.readLine(conn) == "CONNECT 1026\n")
        #expect(write(conn, "OK 1073741824\n", 14) == 14)

        // Raw once the banner is printed: keystrokes pass through untouched.
        #expect(DebugConsoleExecTests.readUntil(master, contains: "Ctrl-] leaves"))
        var during = termios()
        #expect(tcgetattr(slave, &during) == 0)
        #expect(during.c_lflag & tcflag_t(ICANON | ECHO | ISIG) == 0)
        #expect(write(master, "\u{03}ls\r", 4) == 4)  // ^C is a byte for the guest, not a signal
        var typed = [UInt8](repeating: 0, count: 4)
        #expect(DebugConsoleExecTests.readExactly(conn, &typed) && typed == [3, 0x6c, 0x73, 0x0d])

        switch ending {
        case .remoteCloses: shutdown(conn, Int32(SHUT_RDWR))
        case .escapeKey: #expect(write(master, "\u{1d}", 1) == 1)
        case .sigterm: kill(pid, SIGTERM)
        }
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        if ending == .sigterm {
            #expect(status & 0x7f == SIGTERM, "status \(status)")
        } else {
            #expect(status == 0, "status \(status)")
        }
        var after = termios()
        #expect(tcgetattr(slave, &after) == 0)
        #expect(after.c_lflag == before.c_lflag && after.c_iflag == before.c_iflag && after.c_oflag == before.c_oflag)
    }
}

extension DebugConsoleExecTests {
    static func readLine(_ fd: Int32) -> String {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.last != UInt8(ascii: "\n") && line.count < 64 && read(fd, &byte, 1) == 1 { line.append(byte) }
        return String(decoding: line, as: UTF8.self)
    }

    static func readExactly(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
        var got = 0
        while got < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n <= 0 { return false }
            got += n
        }
        return true
    }

    static func readUntil(_ fd: Int32, contains text: String, seconds: Int32 = 20) -> Bool {
        var seen: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while !String(decoding: seen, as: UTF8.self).contains(text) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, seconds * 1000) == 1 else { return false }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return false }
            seen += buffer[0..<n]
        }
        return true
    }
}

extension KataCtl {
    /// Starts kata-ctl with `terminal` as its stdin, stdout and stderr. Returns its pid.
    static func spawn(_ arguments: [String], terminal: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in 0...2 { posix_spawn_file_actions_adddup2(&actions, terminal, fd) }
        let path = try binary()
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw AgentImage.ImageError(description: "posix_spawn \(path): \(rc)") }
        return pid
    }
}
