import KVM

/// Finds a Linux guest's panic in its console output: "Kernel panic - not syncing: <message>".
///
/// The guest reboots right after a panic (`panic=-1`), which on its own looks like a clean
/// reboot; the VMM feeds every console byte through this so the VM stops with `.guestPanic`
/// instead. The message is cut at the end of its line or at `messageLimit` bytes. A hostile
/// guest can print the marker itself: it only ends its own VM.
struct PanicDetector {
    static let marker = Array("Kernel panic - not syncing: ".utf8)
    static let messageLimit = 240

    private var window: [UInt8] = []
    private var message: [UInt8]?
    private var reported = false

    /// Returns the panic message once, when its line is complete.
    mutating func feed(_ bytes: [UInt8]) -> String? {
        guard !reported else { return nil }
        for byte in bytes {
            if message != nil {
                if byte == 0x0a || byte == 0x0d || message!.count >= Self.messageLimit {
                    reported = true
                    return String(decoding: message!, as: UTF8.self)
                }
                message!.append(byte)
                continue
            }
            window.append(byte)
            if window.count > Self.marker.count { window.removeFirst() }
            if window == Self.marker { message = [] }
        }
        return nil
    }
}

/// The console tap a VM installs before it exists: calls `onPanic` once with the message.
final class PanicWatch: Sendable {
    private let detector = Locked(PanicDetector())
    private let action = Locked<(@Sendable (String) -> Void)?>(nil)

    func onPanic(_ body: @escaping @Sendable (String) -> Void) { action.mutate { $0 = body } }

    func feed(_ bytes: [UInt8]) {
        guard let message = detector.mutate({ $0.feed(bytes) }) else { return }
        action.value?(message)
    }
}

/// The registers worth a log line when a vCPU dies: where it was and in which mode.
enum RegisterDump {
    static func summary(_ vcpu: Vcpu) -> String {
        guard let r = try? vcpu.registers(), let s = try? vcpu.specialRegisters() else {
            return "registers unreadable"
        }
        func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
        return "rip=\(hex(r.rip)) rsp=\(hex(r.rsp)) rflags=\(hex(r.rflags)) rax=\(hex(r.rax)) rbx=\(hex(r.rbx)) "
            + "rcx=\(hex(r.rcx)) rdx=\(hex(r.rdx)) rsi=\(hex(r.rsi)) rdi=\(hex(r.rdi)) rbp=\(hex(r.rbp)) "
            + "cs=\(hex(UInt64(s.cs.selector))) cr0=\(hex(s.cr0)) cr2=\(hex(s.cr2)) cr3=\(hex(s.cr3)) "
            + "cr4=\(hex(s.cr4)) efer=\(hex(s.efer)) idt=\(hex(s.idt.base))/\(hex(UInt64(s.idt.limit)))"
    }
}
