import Boot
import Devices
import HostProbes
import Glibc
import VirtIO
import SystemSupport
import Testing
import VMM

/// One real boot of our guest kernel under our VMM, as far as this host allows: until the kernel
/// prints "Run /init" on our serial console. The VM carries virtio-mmio vsock and rng devices;
/// by "Run /init" the kernel's drivers have probed them, so both must show DRIVER_OK, and the
/// rng driver's first read (hwrng registration) must have reached our device thread through the
/// ioeventfd and been answered through the irqfd (the boot waits for it). Slow where KVM emulates guest code (minutes); the
/// console goes to a log file named in the output.
///
/// Kernel: $KATA_GUEST_KERNEL (vmlinux), else guest-image/build-kernel.sh (cached build).
/// Initramfs: $KATA_GUEST_INITRD, else a cpio built here with /bin/busybox (busybox-static) as /init.
struct BootKernelTests {
    static let marker = "Run /init"
    /// Limit of one boot attempt.
    static let attemptLimit: Duration = .seconds(15 * 60)
    /// A boot that prints nothing for this long has stalled (docs/vmm.md: on our emulated KVM,
    /// about half the boots stop printing after "NET: Registered PF_NETLINK" for many minutes,
    /// cause not yet known). A normal boot here never goes quiet for more than about a minute.
    static let stallLimit: Duration = .seconds(150)
    /// Attempts in all; the test fails if none reaches the marker.
    static let attempts = 4

    @Test(.timeLimit(.minutes(40)))
    func ourKernelReachesRunInitOnOurSerialConsole() throws {
        let kernelPath = try Self.kernelPath()
        let kernel = try readWholeFile(kernelPath)
        let initrd = try Self.initrd()
        let defaults = try GuestDefaults.probe()
        let cmdline = try Cmdline(defaults.cmdline)
        print("boot-kernel: kernel \(kernelPath), initrd \(initrd.count) bytes, template \(defaults.template), cmdline '\(cmdline)'")
        var failures: [String] = []
        for attempt in 1...Self.attempts {
            let outcome = try Self.boot(kernel: kernel, initrd: initrd, cmdline: cmdline, template: defaults.template, attempt: attempt)
            switch outcome {
            case .reached(let after, let reason, let slots):
                print("boot-kernel: '\(Self.marker)' after \(after) on attempt \(attempt) (VM stopped: \(reason))")
                for (name, slot) in zip(["vsock", "rng"], slots) {
                    print("boot-kernel: virtio-\(name) at 0x\(String(slot.base, radix: 16)): status 0x\(String(slot.status.rawValue, radix: 16)), \(slot.queueRunCount) queue runs on the device thread, \(slot.trappedKickCount) kicks trapped instead of ioeventfd")
                    #expect(slot.trappedKickCount == 0, "virtio-\(name): QueueNotify reached userspace: the ioeventfd did not match")
                    #expect(slot.status.contains(.driverOK), "virtio-\(name): the guest driver did not reach DRIVER_OK")
                    #expect(!slot.status.contains(.deviceNeedsReset) && !slot.status.contains(.failed), "virtio-\(name) status \(slot.status)")
                }
                #expect(slots.count == 2 && slots[1].queueRunCount > 0, "the rng driver's first read never reached the device thread")
                if !failures.isEmpty { print("boot-kernel: earlier attempts: \(failures.joined(separator: "; "))") }
                return
            case .stalled(let log):
                print("boot-kernel: attempt \(attempt) stalled (no console output for \(Self.stallLimit)); console in \(log)")
                failures.append("attempt \(attempt) stalled (\(log))")
            case .failed(let message):
                Issue.record(Comment(rawValue: message))
                return
            }
        }
        Issue.record("kernel did not print '\(Self.marker)' in \(Self.attempts) attempts: \(failures.joined(separator: "; "))")
    }

    enum Outcome {
        case reached(after: Duration, reason: StopReason, slots: [VirtioMmioSlot])
        case stalled(log: String)
        case failed(String)
    }

    static func boot(kernel: [UInt8], initrd: [UInt8], cmdline: Cmdline, template: CPUTemplate, attempt: Int) throws -> Outcome {
        let logPath = "/tmp/kata-swift-boot-kernel-\(getpid())-\(attempt).log"
        let log = try FileDescriptor.open(logPath, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        print("boot-kernel: attempt \(attempt), console log \(logPath) (limit \(Self.attemptLimit))")
        let watcher = ConsoleWatcher(marker: Self.marker)
        let lastOutput = Mutex(ContinuousClock.now)
        let muxer = VsockMuxer()
        let vsock = VsockDevice(guestCID: 3, backend: muxer)
        let vm = try VirtualMachine(config: VMConfig(
            memorySize: 256 << 20, vcpus: 1, payload: .linux(kernel: kernel, initrd: initrd, cmdline: cmdline),
            cpuTemplate: template,
            consoleOutput: { bytes in
                try? log.writeAll(bytes)
                lastOutput.withLock { $0 = .now }
                watcher.feed(bytes)
            }, virtioDevices: [.vsock(vsock, muxer: muxer), .rng()]))
        watcher.onMatch { [weak vm] _ in vm?.stop() }
        let stalled = DeadlineFlag()
        let done = DeadlineFlag()
        try vm.start()
        let deadline = Deadline(after: Self.attemptLimit) { [weak vm] in vm?.stop(.stopRequested) }
        Task.detached { [weak vm] in
            while !done.isSet {
                try? await Task.sleep(for: .seconds(5))
                if ContinuousClock.now - lastOutput.withLock({ $0 }) > Self.stallLimit {
                    stalled.set()
                    vm?.stop(.stopRequested)
                    return
                }
            }
        }
        let reason = vm.wait()
        done.set()
        deadline.cancel()
        if let after = watcher.matchedAfter { return .reached(after: after, reason: reason, slots: vm.virtioSlots) }
        if stalled.isSet { return .stalled(log: logPath) }
        let tail = (try? readWholeFile(logPath)).map { String(decoding: $0.suffix(1500), as: UTF8.self) } ?? ""
        return .failed("kernel did not print '\(Self.marker)': VM ended with \(reason). Console tail:\n\(tail)")
    }

    static func kernelPath() throws -> String {
        if let path = getenv("KATA_GUEST_KERNEL").map({ String(cString: $0) }), !path.isEmpty { return path }
        let script = packageRoot() + "/guest-image/build-kernel.sh"
        let dir = try run("\(script) 2>/dev/null").trimmingCharacters(in: " \n")
        guard !dir.isEmpty else { throw TestSetupError("\(script) printed no kernel directory") }
        return dir + "/vmlinux"
    }

    static func initrd() throws -> [UInt8] {
        if let path = getenv("KATA_GUEST_INITRD").map({ String(cString: $0) }), !path.isEmpty {
            return try readWholeFile(path)
        }
        let busybox = try readWholeFile("/bin/busybox")
        return Cpio.archive([
            .init(name: "dev", mode: 0o040755, data: []),
            .init(name: "proc", mode: 0o040755, data: []),
            .init(name: "init", mode: 0o100755, data: busybox),
        ])
    }

    static func packageRoot() -> String {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/BootKernelTests/BootKernelTests.swift
        return parts.joined(separator: "/")
    }

    static func run(_ command: String) throws -> String {
        guard let pipe = popen(command, "r") else { throw TestSetupError("cannot run \(command)") }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, pipe)
            if n == 0 { break }
            output += buffer[0..<n]
        }
        let status = pclose(pipe)
        guard status == 0 else { throw TestSetupError("\(command) failed with status \(status)") }
        return String(decoding: output, as: UTF8.self)
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

/// Calls `body` after `duration` unless cancelled first.
final class Deadline: Sendable {
    private let cancelled = DeadlineFlag()

    init(after duration: Duration, _ body: @escaping @Sendable () -> Void) {
        let flag = cancelled
        Task.detached {
            try? await Task.sleep(for: duration)
            if !flag.isSet { body() }
        }
    }

    func cancel() { cancelled.set() }
}

import Synchronization

final class DeadlineFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}
