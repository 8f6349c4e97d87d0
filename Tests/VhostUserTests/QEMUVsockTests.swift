import Devices
import Foundation
import Testing
import VhostUser

/// Our vsock device model served over vhost-user to a real QEMU 7.2 (TCG) running our guest
/// kernel with a busybox initramfs that only sleeps: the host connects to a guest port nobody
/// listens on, and the guest's Linux virtio_vsock driver answers with RST. That exercises the
/// memfd mapping, the RX ring (our REQUEST), the call eventfd (interrupt), the TX ring (the
/// guest's RST) and the kick eventfd, end to end.
@Suite(.serialized) struct QEMUVsockTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"
    /// A guest kernel `make kernel` cached, if there is one.
    static var kernel: String? {
        let kernels = (try? FileManager.default.contentsOfDirectory(atPath: "/var/cache/kata-swift")) ?? []
        return kernels.filter { $0.hasPrefix("kernel-") }.map { "/var/cache/kata-swift/\($0)/vmlinux" }
            .first { FileManager.default.fileExists(atPath: $0) }
    }
    static var canRun: Bool {
        FileManager.default.fileExists(atPath: qemu) && kernel != nil && FileManager.default.fileExists(atPath: "/bin/busybox")
    }

    @Test(
        .enabled(if: canRun, "needs \(qemu), /bin/busybox and a guest kernel under /var/cache/kata-swift (make kernel)"),
        .timeLimit(.minutes(10)))
    func realGuestRefusesAConnectionToAnUnusedPort() throws {
        let qemu = Self.qemu
        let kernel = try #require(Self.kernel)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vu-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let initrd = try makeSleepingInitramfs(in: dir)

        let muxer = VsockMuxer()
        let device = VsockDevice(guestCID: 3, backend: muxer)
        let socket = dir.appendingPathComponent("vsock.sock").path
        let server = try VhostUserServer(path: socket, device: device, queueCount: 2, backendWork: { device.processBackend() })
        muxer.setWakeHandler { [weak server] in server?.wake() }

        let console = dir.appendingPathComponent("console.log")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: qemu)
        process.arguments = [
            "-M", "microvm,acpi=off,memory-backend=mem", "-object", "memory-backend-memfd,id=mem,size=128M,share=on",
            "-m", "128M", "-accel", "tcg", "-cpu", "max", "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "file:\(console.path)", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 reboot=t panic=-1 quiet nowatchdog rcupdate.rcu_cpu_stall_suppress=1",
            "-chardev", "socket,id=c0,path=\(socket)", "-device", "vhost-user-vsock-device,chardev=c0",
        ]
        let qemuLog = dir.appendingPathComponent("qemu.log")
        FileManager.default.createFile(atPath: qemuLog.path, contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: qemuLog)
        try process.run()
        defer {
            // SIGKILL: QEMU left SIGTERM pending here (blocked in the mask Process gave it).
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            server.stop()
        }
        func diagnostics() -> String {
            let console = (try? String(contentsOf: console, encoding: .utf8)) ?? ""
            let qemu = (try? String(contentsOf: qemuLog, encoding: .utf8)) ?? ""
            return "qemu stderr:\n\(qemu.suffix(1500))\nconsole:\n\(console.suffix(1500))"
        }

        let started = Date()
        let active = waitUntil(seconds: 420) { server.isActive }
        try #require(active, "the guest's virtio_vsock driver did not start the rings within 420 s; \(diagnostics())")

        let booted = Date()
        let stream = try muxer.connect(port: 4321)
        let refused = waitUntil(seconds: 120) { stream.phase == .closed(.refused) }
        print("QEMU/TCG guest: rings active after \(booted.timeIntervalSince(started)) s; RST after \(Date().timeIntervalSince(booted)) s")
        #expect(refused, "no RST from the guest; phase \(stream.phase); \(diagnostics())")
        #expect(device.droppedPackets == 0)
    }

    /// A newc initramfs whose /init (busybox sh) keeps the guest alive.
    private func makeSleepingInitramfs(in dir: URL) throws -> String {
        let stage = dir.appendingPathComponent("stage")
        try FileManager.default.createDirectory(at: stage.appendingPathComponent("bin"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: stage.appendingPathComponent("bin/busybox").path)
        let initPath = stage.appendingPathComponent("init").path
        // A loop, not one long sleep: the guest clock may run fast under TCG.
        try "#!/bin/busybox sh\n/bin/busybox echo guest-init-up\nwhile :; do /bin/busybox sleep 1; done\n".write(toFile: initPath, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: initPath)
        let output = dir.appendingPathComponent("initrd.cpio").path
        let cpio = Process()
        cpio.executableURL = URL(fileURLWithPath: "/bin/sh")
        cpio.arguments = ["-c", "cd '\(stage.path)' && find . | cpio -o -H newc --quiet > '\(output)'"]
        try cpio.run()
        cpio.waitUntilExit()
        guard cpio.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
        return output
    }

    private func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }
}
