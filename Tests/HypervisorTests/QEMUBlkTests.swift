import Foundation
import Testing

@testable import Hypervisor

/// Our read-only virtio-blk device model end to end: QEMU/TCG boots our kernel with
/// `root=/dev/vda ro rootfstype=ext4` from a small ext4 image (made with `mke2fs -d` here) that
/// `VhostUserBlk` serves to QEMU's `vhost-user-blk`. The image's /init (busybox sh) prints a token
/// file and the md5 of a 384 KiB random file; both must match what the host put in. Every read
/// runs on the vhost-user server thread under its seccomp allowlist.
@Suite(.serialized) struct QEMUBlkTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"
    static var canRun: Bool {
        FileManager.default.fileExists(atPath: qemu) && FileManager.default.fileExists(atPath: "/bin/busybox")
            && FileManager.default.fileExists(atPath: "/sbin/mke2fs")
    }

    /// $KATA_GUEST_KERNEL, else the cached build of our kernel.
    static func kernel() throws -> String {
        if let path = ProcessInfo.processInfo.environment["KATA_GUEST_KERNEL"], !path.isEmpty { return path }
        let dir = try #require(GuestFixture.shell("\(GuestFixture.repoRoot)/guest-image/build-kernel.sh 2>/dev/null | tail -1"))
        return dir + "/vmlinux"
    }

    @Test(
        .enabled(if: canRun, "needs \(qemu), /bin/busybox and /sbin/mke2fs"),
        .timeLimit(.minutes(10)))
    func guestBootsFromTheImageAndReadsItsFiles() throws {
        let kernel = try Self.kernel()
        let dir = "/tmp/ks-blk-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = GuestFixture.shell("rm -rf \(dir)") }
        let token = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined()
        let initScript = """
            #!/bin/busybox sh
            /bin/busybox echo "blk-token: $(/bin/busybox cat /hello.txt)"
            /bin/busybox echo "blk-md5: $(/bin/busybox md5sum /data.bin)"
            if /bin/busybox touch /written 2>/dev/null; then /bin/busybox echo "blk-ro: writable"; else /bin/busybox echo "blk-ro: refused"; fi
            /bin/busybox reboot -f
            """
        let setup = """
            set -e
            mkdir -p \(dir)/stage/bin \(dir)/stage/dev \(dir)/stage/proc
            cp /bin/busybox \(dir)/stage/bin/busybox
            printf '%s' '\(token)' > \(dir)/stage/hello.txt
            head -c 393216 /dev/urandom > \(dir)/stage/data.bin
            cat > \(dir)/stage/init <<'INIT'
            \(initScript)
            INIT
            chmod 755 \(dir)/stage/init
            /sbin/mke2fs -q -F -t ext4 -d \(dir)/stage \(dir)/rootfs.ext4 8M
            md5sum \(dir)/stage/data.bin | cut -d' ' -f1
            """
        let output = try #require(GuestFixture.shell(setup), "could not make the ext4 image")
        let md5 = try #require(output.split(separator: "\n").last.map(String.init))

        let blk = try VhostUserBlk(imagePath: "\(dir)/rootfs.ext4", socketPath: "\(dir)/blk.sock", serial: "ks-test", logger: .init(label: "test.blk"))
        defer { blk.stop() }

        let console = "\(dir)/console.log"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.qemu)
        process.arguments = [
            "-M", "microvm,acpi=off,memory-backend=mem", "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
            "-m", "256M", "-accel", "tcg", "-cpu", "max", "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "file:\(console)", "-no-reboot", "-kernel", kernel,
            "-append", "console=ttyS0 reboot=t panic=-1 root=/dev/vda ro rootfstype=ext4 init=/init nowatchdog",
        ] + blk.arguments(id: "blk0")
        let qemuLog = "\(dir)/qemu.log"
        _ = FileManager.default.createFile(atPath: qemuLog, contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: qemuLog))
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(420)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        let consoleText = (try? String(contentsOfFile: console, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: qemuLog, encoding: .utf8)) ?? ""
        let diagnostics = "qemu stderr:\n\(stderr.suffix(1500))\nconsole:\n\(consoleText.suffix(3000))"
        #expect(!process.isRunning, "the guest did not finish within 420 s; \(diagnostics)")
        #expect(consoleText.contains("blk-token: \(token)"), "\(diagnostics)")
        #expect(consoleText.contains("blk-md5: \(md5)  /data.bin"), "\(diagnostics)")
        #expect(consoleText.contains("blk-ro: refused"), "\(diagnostics)")
        #expect(!consoleText.contains("I/O error"), "\(diagnostics)")
    }
}
