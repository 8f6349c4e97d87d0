import Devices
import KVM

/// Why a VM stopped.
public enum StopReason: Equatable, Sendable, CustomStringConvertible {
    /// The guest asked for a reset through the i8042 (0xfe on port 0x64): a Linux guest's
    /// `reboot` with `reboot=k`, and its reboot after a panic with `panic=-1`.
    case reset
    /// KVM reported a shutdown exit: the guest triple-faulted (or the CPU reset itself). The
    /// vCPU's registers at that moment, once the vCPU loop has read them.
    case tripleFault(vcpu: Int, registers: String?)
    /// The guest kernel panicked: its console printed "Kernel panic - not syncing: <message>".
    case guestPanic(String)
    /// KVM reported a system event (PSCI-like shutdown/reset/crash), with its type.
    case systemEvent(UInt32)
    /// HLT reached userspace (only without the in-kernel irqchip): the tiny-guest "done".
    case halted
    /// `stop()` was called from the host.
    case stopRequested
    /// VM entry failed: the vCPU state is invalid.
    case failEntry(UInt64)
    /// KVM could not emulate something (suberror 1 = emulation failure), with the instruction bytes.
    case internalError(UInt32, [UInt8])
    /// An exit we do not handle.
    case unhandledExit(String)
    /// KVM_RUN itself failed.
    case runFailed(String)

    public var description: String {
        switch self {
        case .reset: "guest reset (reboot through the i8042)"
        case .tripleFault(let vcpu, let registers):
            "triple fault on vCPU \(vcpu) (KVM shutdown exit)" + (registers.map { ": " + $0 } ?? "")
        case .guestPanic(let message): "guest kernel panic: \(message)"
        case .systemEvent(let t): "KVM system event \(t)"
        case .halted: "guest halted"
        case .stopRequested: "stopped by the host"
        case .failEntry(let r): "VM entry failed (hardware reason 0x\(String(r, radix: 16)))"
        case .internalError(let s, let insn):
            "KVM internal error, suberror \(s)\(s == 1 ? " (emulation failure)" : "")"
                + (insn.isEmpty ? "" : ", instruction " + insn.map { String($0, radix: 16) }.joined(separator: " "))
        case .unhandledExit(let e): "unhandled exit \(e)"
        case .runFailed(let e): "KVM_RUN failed: \(e)"
        }
    }
}

/// What the vCPU loop does after an exit.
public enum VcpuAction: Equatable, Sendable {
    case resume
    /// Resume after handing `data` to the guest's pending read.
    case completeRead([UInt8])
    /// Skip `instructionLength` bytes and deliver exception `vector` to the guest.
    case injectException(vector: UInt8, instructionLength: UInt64)
    case stop(StopReason)
}

/// Decides what to do with one vCPU exit. Pure apart from the device calls, so tests feed it
/// made-up exits and fake devices without KVM.
///
/// Accesses to no device read as all ones and ignore writes (as on a PC). A string I/O exit
/// (`rep ins/outs`) is split into one device access per element.
public func handle(_ exit: VcpuExit, pio: Bus, mmio: Bus) -> VcpuAction {
    switch exit {
    case .ioOut(let port, let size, let data):
        guard size > 0, data.count % size == 0 else { return .stop(.unhandledExit("\(exit)")) }
        guard let (device, offset) = pio.resolve(UInt64(port), size: size) else { return .resume }
        var index = 0
        while index < data.count {
            if device.write(offset: offset, data: Array(data[index..<index + size])) == .resetRequested {
                return .stop(.reset)
            }
            index += size
        }
        return .resume
    case .ioIn(let port, let size, let count):
        guard size > 0, count > 0 else { return .stop(.unhandledExit("\(exit)")) }
        guard let (device, offset) = pio.resolve(UInt64(port), size: size) else {
            return .completeRead([UInt8](repeating: 0xff, count: size * count))
        }
        var bytes: [UInt8] = []
        for _ in 0..<count { bytes += fit(device.read(offset: offset, size: size), size) }
        return .completeRead(bytes)
    case .mmioRead(let address, let size):
        guard let (device, offset) = mmio.resolve(address, size: size) else {
            return .completeRead([UInt8](repeating: 0xff, count: size))
        }
        return .completeRead(fit(device.read(offset: offset, size: size), size))
    case .mmioWrite(let address, let data):
        guard let (device, offset) = mmio.resolve(address, size: data.count) else { return .resume }
        return device.write(offset: offset, data: data) == .resetRequested ? .stop(.reset) : .resume
    case .hlt: return .stop(.halted)
    case .shutdown: return .stop(.tripleFault(vcpu: -1, registers: nil))  // the vCPU loop fills both in
    case .systemEvent(let type): return .stop(.systemEvent(type))
    case .failEntry(let reason): return .stop(.failEntry(reason))
    case .internalError(1, let instruction) where instruction.first == 0xcc:
        // INT3 in a guest whose code KVM emulates (its emulator delivers software interrupts only
        // in real mode): raise #BP ourselves, with RIP after the instruction as the CPU would.
        return .injectException(vector: 3, instructionLength: 1)
    case .internalError(let suberror, let instruction): return .stop(.internalError(suberror, instruction))
    case .interrupted: return .resume  // the vCPU loop checks for a stop request itself
    case .unknown(let reason): return .stop(.unhandledExit("reason \(reason)"))
    }
}

/// Pads with 0xff or truncates a device's answer to exactly `size` bytes.
private func fit(_ bytes: [UInt8], _ size: Int) -> [UInt8] {
    bytes.count >= size ? Array(bytes.prefix(size)) : bytes + [UInt8](repeating: 0xff, count: size - bytes.count)
}
