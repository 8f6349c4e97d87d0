/// Kernel command lines that work per CPU template (measured: docs/vmm.md).
public enum GuestDefaults {
    /// Parameters every guest gets: serial console, reboot through the i8042 (the VMM sees it
    /// and stops), no reboot delay on panic, skip slow or absent hardware probes.
    public static let common = "console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd nomodule"

    /// Extra parameters for a host whose KVM emulates guest kernel code.
    public static let emulatedHost = "noxsave nopku nokaslr"

    public static func cmdline(for template: CPUTemplate) -> String {
        switch template {
        case .host: common
        case .emulated: common + " " + emulatedHost
        }
    }
}
