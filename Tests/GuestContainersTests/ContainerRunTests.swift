// Real containers on this host (root): namespaces, mounts, pivot_root, seccomp, capabilities.
import Glibc
import GuestContainers
import OCI
import Testing

@Suite("Container runs") struct ContainerRunTests {
    @Test func echoHelloIsCaptured() throws {
        let r = try Fixture.run(Fixture.spec(["echo", "hello"]), name: "echo")
        #expect(r.status == 0)
        #expect(r.stdout == "hello\n")
    }

    @Test func exitCodeIsReturned() throws {
        let r = try Fixture.run(Fixture.spec(["sh", "-c", "exit 7"]), name: "exit7")
        #expect(r.status == 7)
    }

    @Test func catReadsStdin() throws {
        let r = try Fixture.run(Fixture.spec(["cat"]), name: "cat", input: "from stdin\nline 2\n")
        #expect(r.status == 0)
        #expect(r.stdout == "from stdin\nline 2\n")
    }

    @Test func tenMiBOfOutputArrivesWhole() throws {
        let r = try Fixture.run(Fixture.spec(["head", "-c", "10485760", "/dev/zero"]), name: "big", keepStdout: false)
        #expect(r.status == 0)
        #expect(r.stdoutCount == 10 * 1024 * 1024)
    }

    @Test func runsAsTheSpecUser() throws {
        let spec = Fixture.spec(["id"], user: OCIUser(uid: 1000, gid: 1000))
        let r = try Fixture.run(spec, name: "id")
        #expect(r.status == 0)
        // Names come from the container's /etc/passwd and /etc/group, not the host's.
        #expect(r.stdout == "uid=1000(user) gid=1000(user)\n", "\(r.stdout)")
    }

    @Test func additionalGroupsAndUmask() throws {
        let spec = Fixture.spec(
            ["sh", "-c", "id -G; umask"], user: OCIUser(uid: 1000, gid: 1000, umask: 0o077, additionalGids: [5, 7]))
        let r = try Fixture.run(spec, name: "groups")
        #expect(r.stdout == "1000 5 7\n0077\n", "\(r.stdout) \(r.stderr)")
    }

    @Test func hostnameComesFromTheSpec() throws {
        let r = try Fixture.run(Fixture.spec(["hostname"], hostname: "kata-box"), name: "host")
        #expect(r.stdout == "kata-box\n")
    }

    @Test func readOnlyRootRefusesWrites() throws {
        let r = try Fixture.run(Fixture.spec(["sh", "-c", "touch /x; touch /tmp/ok && echo tmp-ok"]), name: "ro")
        #expect(r.stderr.contains("Read-only file system"), "\(r.stderr)")
        #expect(r.stdout == "tmp-ok\n")
    }

    @Test func pidNamespaceAndMasking() throws {
        let r = try Fixture.run(
            Fixture.spec(["sh", "-c", "echo $$; cat /proc/kcore | wc -c; echo x > /proc/sys/kernel/domainname"]),
            name: "pidns")
        #expect(r.stdout == "1\n0\n", "\(r.stdout)")
        #expect(r.stderr.contains("Read-only file system"), "\(r.stderr)")
    }

    @Test func seccompDeniesMkdir() throws {
        var spec = Fixture.spec(["sh", "-c", "mkdir /tmp/d"])
        spec.linux?.seccomp = OCISeccomp(
            defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            syscalls: [.init(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: UInt32(EPERM))])
        let r = try Fixture.run(spec, name: "seccomp")
        #expect(r.status != 0)
        #expect(r.stderr.contains("Operation not permitted"), "\(r.stderr)")
    }

    @Test func droppedCapabilityStopsChown() throws {
        var spec = Fixture.spec(["sh", "-c", "touch /tmp/f && chown 1000 /tmp/f"])
        spec.process?.capabilities = OCICapabilities(all: Fixture.defaultCaps.filter { $0 != "CAP_CHOWN" })
        let r = try Fixture.run(spec, name: "nochown")
        #expect(r.status != 0)
        #expect(r.stderr.contains("Operation not permitted"), "\(r.stderr)")
        let ok = try Fixture.run(Fixture.spec(["sh", "-c", "touch /tmp/f && chown 1000 /tmp/f"]), name: "chown")
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    @Test func rlimitIsApplied() throws {
        var spec = Fixture.spec(["sh", "-c", "ulimit -n"])
        spec.process?.rlimits = [OCIRlimit(type: "RLIMIT_NOFILE", hard: 200, soft: 100)]
        let r = try Fixture.run(spec, name: "rlimit")
        #expect(r.stdout == "100\n")
    }

    @Test func terminalGivesAControllingTTY() throws {
        var spec = Fixture.spec(["sh", "-c", "tty; echo on-tty"])
        spec.process?.terminal = true
        let c = try Container.create(
            id: Fixture.uniqueID("tty"), spec: spec, rootfs: try Fixture.rootfs(), stdio: .fds(stdin: -1, stdout: -1, stderr: -1),
            options: Fixture.options())
        defer { try? c.delete(force: true) }
        let master = try #require(c.initProcess.terminalMaster)
        try c.start()
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {  // EIO once the slave side is closed by the exiting process
            let n = buf.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        #expect(c.wait() == 0)
        let text = String(decoding: out, as: UTF8.self)
        #expect(text.contains("/dev/pts/0") && text.contains("on-tty\r\n"), "\(text)")
    }

    @Test func measuresRunLatency() throws {
        // create + start + wait + delete of `true`, sequentially; printed for the report.
        var clock = timespec()
        clock_gettime(CLOCK_MONOTONIC, &clock)
        let start = Double(clock.tv_sec) + Double(clock.tv_nsec) / 1e9
        let n = 20
        for _ in 0..<n {
            let r = try Fixture.run(Fixture.spec(["true"]), name: "lat")
            #expect(r.status == 0)
        }
        clock_gettime(CLOCK_MONOTONIC, &clock)
        let ms = (Double(clock.tv_sec) + Double(clock.tv_nsec) / 1e9 - start) * 1000 / Double(n)
        print("container run latency (create+start+wait+delete of true, \(n) runs): \(Int(ms * 10) / 10) ms each")
    }
}
