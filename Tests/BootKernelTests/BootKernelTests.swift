import Boot
import Glibc
import SystemSupport
import Testing
import VMM

/// One real boot of our guest kernel under our VMM, as far as this host allows: until the kernel
/// prints "Run /init" on our serial console. Slow where KVM emulates guest code (minutes); the
/// console goes to a log file named in the output.
///
/// Kernel: $KATA_GUEST_KERNEL (vmlinux), else guest-image/build-kernel.sh (cached build).
/// Initramfs: $KATA_GUEST_INITRD, else a cpio built here with /bin/busybox (busybox-static) as /init.
struct BootKernelTests {
    static let marker = "Run /init"
    static let limit: Duration = .seconds(15 * 60)

    @Test(.timeLimit(.minutes(16)))
    func ourKernelReachesRunInitOnOurSerialConsole() throws {
        let kernelPath = try Self.kernelPath()
        let kernel = try readWholeFile(kernelPath)
        let initrd = try Self.initrd()
        let defaults = try GuestDefaults.probe()
        let cmdline = try Cmdline(defaults.cmdline)
        let logPath = "/tmp/kata-swift-boot-kernel-\(getpid()).log"
        let log = try FileDescriptor.open(logPath, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        print("boot-kernel: kernel \(kernelPath), initrd \(initrd.count) bytes, template \(defaults.template), cmdline '\(cmdline)'")
        print("boot-kernel: console log \(logPath) (limit \(Self.limit))")

        let watcher = ConsoleWatcher(marker: Self.marker)
        let vm = try VirtualMachine(config: VMConfig(
            memorySize: 256 << 20, vcpus: 1, payload: .linux(kernel: kernel, initrd: initrd, cmdline: cmdline),
            cpuTemplate: defaults.template,
            consoleOutput: { bytes in
                try? log.writeAll(bytes)
                watcher.feed(bytes)
            }))
        watcher.onMatch { [weak vm] _ in vm?.stop() }
        try vm.start()
        let deadline = Deadline(after: Self.limit) { [weak vm] in vm?.stop(.stopRequested) }
        let reason = vm.wait()
        deadline.cancel()
        let tail = (try? readWholeFile(logPath)).map { String(decoding: $0.suffix(1500), as: UTF8.self) } ?? ""
        if let after = watcher.matchedAfter {
            print("boot-kernel: '\(Self.marker)' after \(after) (VM stopped: \(reason))")
        } else {
            Issue.record("kernel did not print '\(Self.marker)': VM ended with \(reason). Console tail:\n\(tail)")
        }
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
