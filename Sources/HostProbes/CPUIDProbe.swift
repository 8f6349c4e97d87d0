import Boot
import Devices
import KVM
import Synchronization
import VMM

/// Checks which CPUID bits a guest really sees under a CPU template.
///
/// Measured on this project's CI host (docs/vmm.md): KVM_SET_CPUID2 hides CMPXCHG16B but the
/// guest still sees POPCNT and XSAVE in leaf 1, so hiding them needs the kernel's own
/// `clearcpuid=`. This probe finds such leaks by running CPUID in a tiny guest.
public enum CPUIDProbe {
    /// A feature bit the template clears but the guest still sees, as the Linux feature number
    /// (word * 32 + bit, arch/x86/include/asm/cpufeatures.h) that `clearcpuid=` takes.
    public struct Leak: Equatable, Sendable {
        public var leaf: UInt32
        public var register: String
        public var bit: Int
        public var linuxFeature: Int
    }

    /// Guest-visible CPUID.1:ECX, CPUID.7.0:EBX and CPUID.7.0:ECX under `template`.
    public static func guestView(template: CPUTemplate, kvm: Kvm? = nil) throws(VMMError) -> [UInt32] {
        let code: [UInt8] = [
            0x66, 0xb8, 0x01, 0x00, 0x00, 0x00,  // mov eax, 1
            0x0f, 0xa2,                          // cpuid
            0xba, 0x10, 0x00,                    // mov dx, 0x10
            0x66, 0x89, 0xc8,                    // mov eax, ecx
            0x66, 0xef,                          // out dx, eax          (leaf 1 ecx)
            0x66, 0xb8, 0x07, 0x00, 0x00, 0x00,  // mov eax, 7
            0x66, 0x31, 0xc9,                    // xor ecx, ecx
            0x0f, 0xa2,                          // cpuid
            0xba, 0x10, 0x00,                    // mov dx, 0x10
            0x66, 0x89, 0xd8,                    // mov eax, ebx
            0x66, 0xef,                          // out dx, eax          (leaf 7 ebx)
            0x66, 0x89, 0xc8,                    // mov eax, ecx
            0x66, 0xef,                          // out dx, eax          (leaf 7 ecx)
            0xb0, 0xfe, 0xe6, 0x64,              // mov al, 0xfe; out 0x64, al (reset: done)
        ]
        let vm = try VirtualMachine(
            config: VMConfig(memorySize: 1 << 20, payload: .realMode(code: code, address: Layout.probeCodeStart), cpuTemplate: template),
            kvm: kvm)
        let sink = WordSink()
        do { try vm.pio.register(sink, base: 0x10, length: 4) } catch { throw .bus(error) }
        try vm.start()
        let reason = vm.wait()
        let words = sink.words
        guard reason == .reset, words.count == 3 else {
            throw .probeFailed("CPUID probe guest ended with \(reason) after \(words.count) of 3 values")
        }
        return words
    }

    /// Bits the template hides that the guest still sees.
    public static func leaks(template: CPUTemplate, kvm: Kvm? = nil) throws(VMMError) -> [Leak] {
        let seen = try guestView(template: template, kvm: kvm)
        var result: [Leak] = []
        let checks: [(UInt32, UInt32?, Int, String, UInt32, Int)] = [
            (1, nil, 2, "ecx", seen[0], 4), (7, 0, 1, "ebx", seen[1], 9), (7, 0, 2, "ecx", seen[2], 16),
        ]
        for (leaf, subleaf, register, name, value, word) in checks {
            let mask = template.hidden
                .filter { $0.leaf == leaf && $0.subleaf == subleaf && $0.register == register }
                .reduce(UInt32(0)) { $0 | $1.mask }
            let leaked = value & mask
            for bit in 0..<32 where leaked & (1 << UInt32(bit)) != 0 {
                result.append(Leak(leaf: leaf, register: name, bit: bit, linuxFeature: word * 32 + bit))
            }
        }
        return result
    }
}

/// Collects 32-bit port writes.
private final class WordSink: BusDevice {
    private let capture = Mutex<[UInt32]>([])
    var words: [UInt32] { capture.withLock { $0 } }

    func read(offset: UInt64, size: Int) -> [UInt8] { [UInt8](repeating: 0, count: size) }

    func write(offset: UInt64, data: [UInt8]) -> BusWriteOutcome {
        guard data.count == 4 else { return .done }
        let word = data.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
        capture.withLock { $0.append(word) }
        return .done
    }
}
