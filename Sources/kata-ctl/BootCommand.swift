import ArgumentParser
import Boot
import Glibc
import HostProbes
import KVM
import SystemSupport
import VMM

/// `kata-ctl boot`: boots a kernel in our in-process VMM with the console on stdout/stdin.
///
/// Exit status: 0 the guest rebooted or shut down (how a guest ends: `reboot -f`), or printed the
/// `--stop-on` text; 1 setup error, 2 the guest halted, 3 KVM could not run the guest (emulation
/// failure, entry failure, unhandled exit), 4 stopped by the host (timeout), 5 the guest kernel
/// panicked, 6 the guest triple-faulted (its registers are printed).
struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot", abstract: "Boot a kernel in the in-process KVM VMM and print its console.")

    @Option(help: "Kernel: vmlinux ELF (PVH entry preferred) or bzImage.") var kernel: String
    @Option(help: "Initramfs (cpio, optionally compressed).") var initrd: String?
    @Option(help: "Kernel command line (default: chosen for this host, see --print-defaults).") var cmdline: String?
    @Option(help: "Extra kernel parameters appended to the command line.") var append: String?
    @Option(help: "Guest memory in MiB.") var memory: UInt64 = 256
    @Option(help: "Number of vCPUs.") var vcpus: Int = 1
    @Option(help: "CPU template: auto (probe the host), host, emulated.") var cpuTemplate: String = "auto"
    @Option(help: "Stop the guest after this many seconds (0: never).") var timeout: Double = 0
    @Option(help: "Stop the guest as soon as the console prints this text (exit status 0).") var stopOn: String?
    @Flag(help: "Print the chosen CPU template and command line, then exit.") var printDefaults = false

    func run() throws {
        do {
            let kvm = try Kvm()
            let defaults: GuestDefaults
            if cpuTemplate == "auto" {
                defaults = try GuestDefaults.probe(kvm: kvm)
            } else if let t = CPUTemplate(rawValue: cpuTemplate) {
                defaults = GuestDefaults(template: t)
            } else {
                throw ValidationError("unknown CPU template '\(cpuTemplate)' (auto, host, emulated)")
            }
            let template = defaults.template
            var line = try Cmdline(cmdline ?? defaults.cmdline)
            if let append { try line.insertString(append) }
            if printDefaults {
                print("cpu-template: \(template.rawValue)")
                print("cmdline: \(line)")
                return
            }
            let watcher = ConsoleWatcher(marker: stopOn ?? "")
            let kernelBytes = try readFile(kernel, what: "kernel")
            let initrdBytes = try initrd.map { try readFile($0, what: "initramfs") }
            let vm = try VirtualMachine(
                config: VMConfig(
                    memorySize: memory << 20, vcpus: vcpus,
                    payload: .linux(kernel: kernelBytes, initrd: initrdBytes, cmdline: line), cpuTemplate: template,
                    consoleOutput: { bytes in
                        _ = bytes.withUnsafeBufferPointer { Glibc.write(1, $0.baseAddress, $0.count) }
                        watcher.feed(bytes)
                    }),
                kvm: kvm)
            watcher.onMatch { [weak vm] elapsed in
                FileDescriptor.stderrLine("\nkata-ctl: console printed '\(stopOn ?? "")' after \(seconds(elapsed)) s")
                vm?.stop()
            }
            ConsoleInput.forward(to: vm)
            let start = ContinuousClock.now
            try vm.start()
            if timeout > 0 { Watchdog.stop(vm, after: timeout) }
            let reason = vm.wait()
            let elapsed = ContinuousClock.now - start
            FileDescriptor.stderrLine("kata-ctl: guest ended after \(seconds(elapsed)) s: \(reason)")
            if watcher.matchedAfter != nil { return }
            throw ExitCode(Self.exitStatus(reason))
        } catch let error as KVMError {
            if case .openDevice(let path, let errno) = error, errno == .noEntry {
                FileDescriptor.stderrLine("kata-ctl: \(path) does not exist: this host has no KVM (load kvm_intel/kvm_amd or enable nested virtualization)")
            } else {
                FileDescriptor.stderrLine("kata-ctl: \(error)")
            }
            throw ExitCode(1)
        } catch let error as VMMError {
            FileDescriptor.stderrLine("kata-ctl: \(error)")
            throw ExitCode(1)
        } catch let error as CmdlineError {
            FileDescriptor.stderrLine("kata-ctl: kernel command line: \(error)")
            throw ExitCode(1)
        } catch let error as FileError {
            FileDescriptor.stderrLine("kata-ctl: \(error)")
            throw ExitCode(1)
        }
    }

    func seconds(_ d: Duration) -> String {
        let c = d.components
        return String(Double(c.seconds) + Double(c.attoseconds) / 1e18)
    }

    static func exitStatus(_ reason: StopReason) -> Int32 {
        switch reason {
        case .reset, .systemEvent: 0
        case .halted: 2
        case .failEntry, .internalError, .unhandledExit, .runFailed: 3
        case .stopRequested: 4
        case .guestPanic: 5
        case .tripleFault: 6
        }
    }

    struct FileError: Error, CustomStringConvertible {
        var description: String
    }

    func readFile(_ path: String, what: String) throws -> [UInt8] {
        do {
            let bytes = try readWholeFile(path)
            guard !bytes.isEmpty else { throw FileError(description: "\(what) \(path) is empty") }
            return bytes
        } catch let error as Errno {
            throw FileError(description: "cannot read \(what) \(path): \(error)")
        }
    }
}

extension FileDescriptor {
    static func stderrLine(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        _ = bytes.withUnsafeBufferPointer { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
