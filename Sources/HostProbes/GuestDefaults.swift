import KVM
import VMM

/// How to boot a Linux guest on this host: CPU template and kernel command line, chosen by
/// probing the host's KVM with tiny guests (HostProbe, CPUIDProbe), never by host name.
public struct GuestDefaults: Equatable, Sendable {
    /// Parameters every guest gets: serial console, reboot through the i8042 (the VMM sees the
    /// reset and stops), no reboot delay on panic.
    /// `earlyprintk` shows progress before the console driver registers (minutes on slow hosts).
    /// `random.trust_cpu=on`: the guest's random pool is ready at boot, seeded by RDRAND/RDSEED,
    /// so the agent's first getrandom() (its Swift runtime calls it before main) never waits for
    /// entropy; virtio-rng feeds host entropy from then on (docs/guest-image.md, "Entropy").
    public static let common = "console=ttyS0 earlyprintk=ttyS0 reboot=k panic=-1 random.trust_cpu=on"

    public var template: CPUTemplate
    /// Linux feature numbers the template could not hide (see CPUIDProbe) and `clearcpuid=` must.
    public var clearCPUID: [Int]

    public init(template: CPUTemplate, clearCPUID: [Int] = []) {
        self.template = template
        self.clearCPUID = clearCPUID
    }

    public var cmdline: String {
        var line = Self.common
        if template == .emulated { line += " noxsave" }
        if !clearCPUID.isEmpty { line += " clearcpuid=" + clearCPUID.map(String.init).joined(separator: ",") }
        return line
    }

    /// Probes the host: native hosts get the host template; emulating hosts get the emulated
    /// template plus `clearcpuid=` for every bit that leaks through it.
    public static func probe(kvm: Kvm? = nil) throws(VMMError) -> GuestDefaults {
        let template = try HostProbe.defaultTemplate(kvm: kvm)
        guard template == .emulated else { return GuestDefaults(template: .host) }
        let leaks = try CPUIDProbe.leaks(template: .emulated, kvm: kvm)
        let must = CPUTemplate.emulated.mustClearWhenLeaking
        return GuestDefaults(template: .emulated, clearCPUID: leaks.map(\.linuxFeature).filter(must.contains))
    }
}
