import KVM
import VMM

/// Can this host's KVM run a guest userspace? Runs a tiny 64-bit guest that starts in ring 3,
/// executes SYSCALL, and reports its code segment from the SYSCALL handler (must be ring 0) and
/// again after SYSRET (must be ring 3). A Linux userspace needs exactly this transition; on hosts
/// whose KVM emulates the guest badly, the handler runs in ring 3, or the vCPU fails.
public enum KVMUserspaceProbe {
    public enum Outcome: Equatable, Sendable {
        case works
        case fails(String)
    }

    /// The port both programs report CS on (an I/O port, not a guest address).
    static let reportPort: UInt16 = 0x99

    /// ring 3: syscall; mov ax, cs; out 0x99, ax; jmp $
    static let userProgram: [UInt8] = [0x0f, 0x05, 0x66, 0x8c, 0xc8, 0x66, 0xe7, 0x99, 0xeb, 0xfe]
    /// ring 0 (LSTAR): mov ax, cs; out 0x99, ax; sysretq
    static let handlerProgram: [UInt8] = [0x66, 0x8c, 0xc8, 0x66, 0xe7, 0x99, 0x48, 0x0f, 0x07]

    public static func run() -> Outcome {
        do {
            return try runGuest()
        } catch {
            return .fails("setting up the probe guest: \(error)")
        }
    }

    /// The guest is the VMM's `ProbeGuest`: Boot's GDT (with ring-3 segments) and page tables,
    /// the boot vCPU setup, every address from `Layout`.
    private static func runGuest() throws -> Outcome {
        let guest = try ProbeGuest(code: userProgram, syscallHandler: handlerProgram)
        var reports: [UInt16] = []
        for _ in 0..<16 {
            let exit = try guest.runOnce()
            switch exit {
            case .ioOut(let port, _, let data) where port == reportPort && data.count == 2:
                reports.append(UInt16(data[0]) | UInt16(data[1]) << 8)
                if reports.count == 2 { return verdict(reports) }
            case .interrupted:
                continue
            default:
                let seen = reports.map { "CS=0x" + String($0, radix: 16) }.joined(separator: ", ")
                return .fails("after \(reports.count) report(s) [\(seen)] the vCPU exited with \(exit)")
            }
        }
        return .fails("no verdict after 16 exits (reports \(reports))")
    }

    public static func verdict(_ reports: [UInt16]) -> Outcome {
        guard reports.count == 2 else { return .fails("incomplete reports \(reports)") }
        guard reports[0] & 3 == 0 else {
            return .fails("the SYSCALL handler ran with CS=0x\(String(reports[0], radix: 16)) (ring \(reports[0] & 3), not 0)")
        }
        guard reports[1] == ProbeGuest.userCodeSelector else {
            let expected = String(ProbeGuest.userCodeSelector, radix: 16)
            return .fails("after SYSRET CS=0x\(String(reports[1], radix: 16)), expected 0x\(expected) (ring 3)")
        }
        return .works
    }
}
