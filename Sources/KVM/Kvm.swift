// KVM: /dev/kvm system, VM and vCPU wrappers, and the typed VcpuExit.
import CKVM
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Errors of the KVM layer; each case names the operation that failed.
public enum KVMError: Error, Equatable, Sendable, CustomStringConvertible {
    case openDevice(path: String, Errno)
    case apiVersion(found: Int32)
    case createVM(Errno)
    case missingCapability(String)
    case vcpuMmapSize(Errno)
    case supportedCPUID(Errno)
    case setUserMemoryRegion(Errno)
    case setTSSAddress(Errno)
    case setIdentityMapAddress(Errno)
    case createIRQChip(Errno)
    case createPIT(Errno)
    case irqLine(Errno)
    case createVcpu(id: Int, Errno)
    case mmapRun(Errno)
    case getRegisters(Errno)
    case setRegisters(Errno)
    case getSpecialRegisters(Errno)
    case setSpecialRegisters(Errno)
    case setFPU(Errno)
    case setCPUID(Errno)
    case setMSRs(Errno)
    case setMSRsPartial(set: Int, of: Int)
    case getLAPIC(Errno)
    case setLAPIC(Errno)
    case run(Errno)
    case vcpuEvents(Errno)
    case irqfd(gsi: UInt32, Errno)
    case ioeventfd(address: UInt64, Errno)
    /// A state ioctl of snapshot or restore (KVM_GET_XSAVE, KVM_SET_IRQCHIP, ...), by name.
    case state(String, Errno)
    case msrIndexList(Errno)
    case msrRefused(index: UInt32, value: UInt64)

    public var description: String {
        switch self {
        case .openDevice(let path, let e): "cannot open \(path): \(e)"
        case .apiVersion(let v): "KVM API version \(v), expected 12"
        case .createVM(let e): "KVM_CREATE_VM: \(e)"
        case .missingCapability(let c): "KVM lacks capability \(c)"
        case .vcpuMmapSize(let e): "KVM_GET_VCPU_MMAP_SIZE: \(e)"
        case .supportedCPUID(let e): "KVM_GET_SUPPORTED_CPUID: \(e)"
        case .setUserMemoryRegion(let e): "KVM_SET_USER_MEMORY_REGION: \(e)"
        case .setTSSAddress(let e): "KVM_SET_TSS_ADDR: \(e)"
        case .setIdentityMapAddress(let e): "KVM_SET_IDENTITY_MAP_ADDR: \(e)"
        case .createIRQChip(let e): "KVM_CREATE_IRQCHIP: \(e)"
        case .createPIT(let e): "KVM_CREATE_PIT2: \(e)"
        case .irqLine(let e): "KVM_IRQ_LINE: \(e)"
        case .createVcpu(let id, let e): "KVM_CREATE_VCPU \(id): \(e)"
        case .mmapRun(let e): "mmap of kvm_run: \(e)"
        case .getRegisters(let e): "KVM_GET_REGS: \(e)"
        case .setRegisters(let e): "KVM_SET_REGS: \(e)"
        case .getSpecialRegisters(let e): "KVM_GET_SREGS: \(e)"
        case .setSpecialRegisters(let e): "KVM_SET_SREGS: \(e)"
        case .setFPU(let e): "KVM_SET_FPU: \(e)"
        case .setCPUID(let e): "KVM_SET_CPUID2: \(e)"
        case .setMSRs(let e): "KVM_SET_MSRS: \(e)"
        case .setMSRsPartial(let n, let total): "KVM_SET_MSRS set only \(n) of \(total) MSRs"
        case .getLAPIC(let e): "KVM_GET_LAPIC: \(e)"
        case .setLAPIC(let e): "KVM_SET_LAPIC: \(e)"
        case .run(let e): "KVM_RUN: \(e)"
        case .vcpuEvents(let e): "KVM_GET/SET_VCPU_EVENTS: \(e)"
        case .irqfd(let gsi, let e): "KVM_IRQFD (GSI \(gsi)): \(e)"
        case .ioeventfd(let address, let e): "KVM_IOEVENTFD at 0x\(String(address, radix: 16)): \(e)"
        case .state(let name, let e): "\(name): \(e)"
        case .msrIndexList(let e): "KVM_GET_MSR_INDEX_LIST: \(e)"
        case .msrRefused(let index, let value): "KVM_SET_MSRS refused MSR 0x\(String(index, radix: 16)) = 0x\(String(value, radix: 16))"
        }
    }
}

/// One CPUID leaf as KVM reports and accepts it.
public typealias CPUIDEntry = ks_cpuid_entry

extension ks_cpuid_entry: @retroactive Equatable, @unchecked @retroactive Sendable {
    public static func == (a: ks_cpuid_entry, b: ks_cpuid_entry) -> Bool {
        a.function == b.function && a.index == b.index && a.flags == b.flags && a.eax == b.eax
            && a.ebx == b.ebx && a.ecx == b.ecx && a.edx == b.edx
    }
}

/// The KVM system handle (/dev/kvm).
public final class Kvm: Sendable {
    public let fd: FileDescriptor

    /// Opens /dev/kvm (or `path`) and checks the API version is 12.
    public init(path: String = "/dev/kvm") throws(KVMError) {
        do {
            fd = try FileDescriptor.open(path, O_RDWR)
        } catch {
            throw .openDevice(path: path, error)
        }
        let version = ioctl(fd.rawValue, KS_KVM_GET_API_VERSION)
        guard version == 12 else { throw .apiVersion(found: version) }
    }

    /// KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific positive value.
    public func checkExtension(_ capability: Int32) -> Int32 {
        max(0, ioctl(fd.rawValue, KS_KVM_CHECK_EXTENSION, capability))
    }

    /// The number of vCPUs KVM recommends (KVM_CAP_NR_VCPUS: the host's online CPUs). Advice:
    /// more vCPUs than host CPUs run, overcommitted.
    public var recommendedVcpus: Int { Int(max(1, checkExtension(KVM_CAP_NR_VCPUS))) }

    /// The most vCPUs one VM may have (KVM_CAP_MAX_VCPUS; the recommended count where the
    /// kernel does not say).
    public var maxVcpus: Int { Int(max(checkExtension(KVM_CAP_MAX_VCPUS), checkExtension(KVM_CAP_NR_VCPUS), 1)) }

    public func vcpuMmapSize() throws(KVMError) -> Int {
        let size = ioctl(fd.rawValue, KS_KVM_GET_VCPU_MMAP_SIZE)
        guard size > 0 else { throw .vcpuMmapSize(.current) }
        return Int(size)
    }

    /// KVM_GET_SUPPORTED_CPUID: the leaves KVM can present to a guest on this host.
    public func supportedCPUID() throws(KVMError) -> [CPUIDEntry] {
        try Self.growingList(from: 128, upTo: 4096, empty: CPUIDEntry(), failure: KVMError.supportedCPUID) {
            ks_kvm_get_supported_cpuid(fd.rawValue, &$0, $1)
        }
    }

    /// KVM_GET_MSR_INDEX_LIST: the MSRs whose values a vCPU snapshot carries.
    public func msrIndexList() throws(KVMError) -> [UInt32] {
        try Self.growingList(from: 256, upTo: 16384, empty: UInt32(0), failure: KVMError.msrIndexList) {
            ks_kvm_msr_index_list(fd.rawValue, &$0, $1)
        }
    }

    /// A list KVM fills into a buffer of a given capacity: `fill` returns the count, or -errno
    /// (-E2BIG: too small, so the capacity doubles up to `limit`; any other, `failure`).
    private static func growingList<T>(
        from capacity: Int, upTo limit: Int, empty: T, failure: (Errno) -> KVMError, _ fill: (inout [T], Int32) -> Int32
    ) throws(KVMError) -> [T] {
        var capacity = capacity
        while true {
            var buffer = [T](repeating: empty, count: capacity)
            let n = fill(&buffer, Int32(capacity))
            if n == -E2BIG && capacity < limit {
                capacity *= 2
                continue
            }
            guard n >= 0 else { throw failure(Errno(rawValue: -n)) }
            return Array(buffer.prefix(Int(n)))
        }
    }

    /// Creates a VM (KVM_CREATE_VM, machine type 0).
    public func createVM() throws(KVMError) -> VM {
        let raw = ioctl(fd.rawValue, KS_KVM_CREATE_VM, Int32(0))
        guard raw >= 0 else { throw .createVM(.current) }
        return VM(kvm: self, fd: FileDescriptor(owning: raw))
    }
}
