import ArgumentParser
import Hypervisor

/// `kata-ctl check`: which hypervisor backend can run a guest userspace on this host, and why.
/// Registered in KataCtl's `subcommands` (one line, owned by the kata-ctl main).
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Probe which hypervisor backend (kvm, qemu) can run a guest userspace here.")

    @Flag(help: "Probe again instead of using the cached verdict.")
    var refresh = false

    @Option(help: "The QEMU binary of the qemu backend.")
    var qemu = "/usr/bin/qemu-system-x86_64"

    func run() throws {
        let v = BackendProbe.verdict(qemuBinary: qemu, refresh: refresh)
        print("host key: \(v.key)\(v.cached ? " (cached verdict)" : " (probed now)")")
        print("kvm  (in-process VMM): \(v.kvmUserspace ? "runs a guest userspace" : "cannot run a guest userspace")")
        print("      \(v.kvmReason)")
        print("qemu (microvm, TCG, vsock over our vhost-user): \(v.qemuAvailable ? "available" : "unavailable")")
        print("      \(v.qemuReason)")
        if let choice = v.autoChoice {
            print("auto -> \(choice)")
        } else {
            print("auto -> none: no backend can run a guest here")
            throw ExitCode(1)
        }
    }
}
