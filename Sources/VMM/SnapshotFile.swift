// A saved VM on disk (docs/snapshots.md): the in-kernel state of the VM and of each vCPU, then
// guest RAM at page-aligned offsets, so that a restore maps it private rather than reading it.
// A snapshot file is input like any other: every count, length and offset is checked on load.
import CKVM
import KVM
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

public enum SnapshotFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case io(String, Errno)
    case notASnapshot
    case unsupportedVersion(UInt32)
    case truncated(String)
    case recordSize(String, found: Int, expected: Int)
    case tooMany(String, Int)
    case badRegion(index: Int, String)

    public var description: String {
        switch self {
        case .io(let what, let e): "snapshot: \(what): \(e)"
        case .notASnapshot: "snapshot: not a kata-swift snapshot file"
        case .unsupportedVersion(let v): "snapshot: version \(v), this build reads version \(SnapshotFile.version)"
        case .truncated(let what): "snapshot: file ends inside \(what)"
        case .recordSize(let name, let found, let expected): "snapshot: \(name) is \(found) bytes, expected \(expected)"
        case .tooMany(let what, let n): "snapshot: \(n) \(what) is more than a VM has"
        case .badRegion(let index, let why): "snapshot: memory region \(index): \(why)"
        }
    }
}

public struct SnapshotFile: Sendable {
    /// One range of guest RAM and where its bytes are in the file.
    public struct Region: Equatable, Sendable {
        public var guestAddress: UInt64
        public var size: UInt64
        public var fileOffset: UInt64
    }

    static let magic: [UInt8] = Array("KSWSNAP\0".utf8)
    /// Magic, version, vCPU count, region count (u32 each after the magic), state length (u64).
    static let headerSize = 8 + 4 * 3 + 8
    public static let version: UInt32 = 1
    static let page: UInt64 = 4096
    static let maxVcpus = 256
    static let maxRegions = 64
    static let maxMSRs = 4096
    static let maxStateBytes = 64 << 20

    /// The VM's in-kernel devices; nil for a VM without an in-kernel irqchip.
    public var vm: VMState?
    public var vcpus: [VcpuState]
    /// Our device models' state, each under its name (the serial port: "serial").
    public var devices: [String: [UInt8]]
    public var regions: [Region]
    static let maxDevices = 64
    static let maxDeviceNameBytes = 64

    // MARK: writing

    /// Writes a snapshot: `vm` and `vcpus` as captured, and each guest RAM range's bytes.
    public static func write(
        to path: String, vm: VMState?, vcpus: [VcpuState], devices: [String: [UInt8]] = [:],
        memory: [(guestAddress: UInt64, bytes: UnsafeRawBufferPointer)]
    ) throws(SnapshotFileError) {
        var state = StateWriter()
        state.u32(vm == nil ? 0 : 1)
        if let vm {
            vm.irqChips.forEach { state.record($0) }
            state.record(vm.pit)
            state.record(vm.clock)
        }
        for vcpu in vcpus {
            state.record(vcpu.mpState)
            state.record(vcpu.registers)
            state.record(vcpu.specialRegisters)
            state.bytes(vcpu.extendedState)
            state.record(vcpu.controlRegisters)
            state.record(vcpu.debugRegisters)
            state.u32(vcpu.localAPIC == nil ? 0 : 1)
            if let lapic = vcpu.localAPIC { state.record(lapic) }
            state.u32(UInt32(vcpu.msrs.count))
            for msr in vcpu.msrs {
                state.u32(msr.index)
                state.u64(msr.value)
            }
            state.record(vcpu.events)
        }
        state.u32(UInt32(devices.count))
        for (name, bytes) in devices.sorted(by: { $0.key < $1.key }) {
            state.bytes(Array(name.utf8))
            state.bytes(bytes)
        }
        let tableSize = memory.count * 24
        var offset = roundUp(UInt64(headerSize + state.data.count + tableSize))
        var regions: [Region] = []
        for range in memory {
            regions.append(Region(guestAddress: range.guestAddress, size: UInt64(range.bytes.count), fileOffset: offset))
            offset = roundUp(offset + UInt64(range.bytes.count))
        }
        var head = LittleEndianWriter()
        head.append(contentsOf: magic)
        head.append(version)
        head.append(UInt32(vcpus.count))
        head.append(UInt32(regions.count))
        head.append(UInt64(state.data.count))
        head.append(contentsOf: state.data)
        for region in regions {
            head.append(region.guestAddress)
            head.append(region.size)
            head.append(region.fileOffset)
        }
        do throws(Errno) {
            let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
            try writeAll(fd.rawValue, head.bytes)
            for (region, range) in zip(regions, memory) {
                try writeSparse(fd, range.bytes, at: region.fileOffset)
            }
            guard ftruncate(fd.rawValue, off_t(offset)) == 0 else { throw Errno.current }
        } catch {
            throw .io("writing \(path)", error)
        }
    }

    static func roundUp(_ value: UInt64) -> UInt64 { (value + page - 1) & ~(page - 1) }

    /// Writes `bytes` at `offset`, leaving a hole for every page of zeros: most of a booted
    /// guest's RAM was never touched, the file stays sparse (on tmpfs it costs only the pages
    /// written), and a private mapping of a hole reads zeros.
    static func writeSparse(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(Errno) {
        guard let base = bytes.baseAddress else { return }
        let pageSize = Int(page)
        let zeros = [UInt8](repeating: 0, count: pageSize)
        func isZero(_ start: Int) -> Bool {
            zeros.withUnsafeBytes { memcmp(base + start, $0.baseAddress!, min(pageSize, bytes.count - start)) == 0 }
        }
        var start = 0
        while start < bytes.count {
            if isZero(start) {
                start += pageSize
                continue
            }
            var end = start + pageSize
            while end < bytes.count, !isZero(end) { end += pageSize }
            end = min(end, bytes.count)
            try writeAll(fd.rawValue, UnsafeRawBufferPointer(rebasing: bytes[start..<end]), at: offset + UInt64(start))
            start = end
        }
    }

    // MARK: reading

    /// Reads and checks the snapshot at `path`; `fd` stays open for `mapRegion`.
    public static func read(from path: String) throws(SnapshotFileError) -> (snapshot: SnapshotFile, fd: FileDescriptor) {
        let fd: FileDescriptor
        let fileSize: Int
        do {
            fd = try FileDescriptor.open(path, O_RDONLY)
            fileSize = try fd.size()
        } catch {
            throw .io("opening \(path)", error)
        }
        let header = try readNext(fd, headerSize, of: path)
        guard header.count == headerSize, Array(header[0..<8]) == magic else { throw .notASnapshot }
        var head = StateReader(header[8...])
        let version = try head.u32("the header")
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let vcpuCount = Int(try head.u32("the header"))
        let regionCount = Int(try head.u32("the header"))
        let stateLength = try head.u64("the header")
        guard vcpuCount <= maxVcpus else { throw .tooMany("vCPUs", vcpuCount) }
        guard regionCount <= maxRegions else { throw .tooMany("memory regions", regionCount) }
        guard stateLength <= UInt64(maxStateBytes) else { throw .tooMany("bytes of state", Int(clamping: stateLength)) }
        let bodyLength = Int(stateLength) + regionCount * 24
        let body = try readNext(fd, bodyLength, of: path)
        guard body.count == bodyLength else { throw .truncated("the state") }
        var reader = StateReader(body[...])
        let snapshot = try decode(&reader, vcpuCount: vcpuCount, regionCount: regionCount, fileSize: UInt64(fileSize))
        return (snapshot, fd)
    }

    private static func decode(
        _ reader: inout StateReader, vcpuCount: Int, regionCount: Int, fileSize: UInt64
    ) throws(SnapshotFileError) -> SnapshotFile {
        var vm: VMState?
        if try reader.u32("the VM's state") != 0 {
            let chips = [try reader.record("PIC master", kvm_irqchip.self), try reader.record("PIC slave", kvm_irqchip.self),
                         try reader.record("IOAPIC", kvm_irqchip.self)]
            vm = VMState(irqChips: chips, pit: try reader.record("PIT", kvm_pit_state2.self),
                         clock: try reader.record("clock", kvm_clock_data.self))
        }
        var vcpus: [VcpuState] = []
        for id in 0..<vcpuCount {
            let name = "vCPU \(id)"
            let mpState = try reader.record("\(name) MP state", kvm_mp_state.self)
            let registers = try reader.record("\(name) registers", kvm_regs.self)
            let special = try reader.record("\(name) special registers", kvm_sregs.self)
            let xsave = try reader.bytes("\(name) extended state")
            guard xsave.count == Int(KS_KVM_XSAVE_SIZE) else {
                throw .recordSize("\(name) extended state", found: xsave.count, expected: Int(KS_KVM_XSAVE_SIZE))
            }
            let xcrs = try reader.record("\(name) XCRs", kvm_xcrs.self)
            let debug = try reader.record("\(name) debug registers", kvm_debugregs.self)
            let lapic = try reader.u32(name) != 0 ? try reader.record("\(name) local APIC", kvm_lapic_state.self) : nil
            let msrCount = Int(try reader.u32(name))
            guard msrCount <= maxMSRs else { throw .tooMany("MSRs", msrCount) }
            var msrs: [MSRValue] = []
            for _ in 0..<msrCount { msrs.append(MSRValue(index: try reader.u32("\(name) MSRs"), value: try reader.u64("\(name) MSRs"))) }
            let events = try reader.record("\(name) events", kvm_vcpu_events.self)
            vcpus.append(VcpuState(
                mpState: mpState, registers: registers, specialRegisters: special, extendedState: xsave, controlRegisters: xcrs,
                debugRegisters: debug, localAPIC: lapic, msrs: msrs, events: events))
        }
        let deviceCount = Int(try reader.u32("the devices"))
        guard deviceCount <= maxDevices else { throw .tooMany("devices", deviceCount) }
        var devices: [String: [UInt8]] = [:]
        for _ in 0..<deviceCount {
            let nameBytes = try reader.bytes("a device's name")
            guard nameBytes.count <= maxDeviceNameBytes, let name = String(validating: nameBytes, as: UTF8.self),
                  devices[name] == nil
            else { throw .recordSize("a device's name", found: nameBytes.count, expected: maxDeviceNameBytes) }
            devices[name] = try reader.bytes("device \(name)")
        }
        var regions: [Region] = []
        for index in 0..<regionCount {
            let region = Region(guestAddress: try reader.u64("the memory table"), size: try reader.u64("the memory table"),
                                fileOffset: try reader.u64("the memory table"))
            guard region.size > 0, region.size % page == 0, region.fileOffset % page == 0, region.guestAddress % page == 0 else {
                throw .badRegion(index: index, "size, address and file offset must be whole pages")
            }
            guard region.fileOffset <= fileSize, region.size <= fileSize - region.fileOffset else {
                throw .badRegion(index: index, "bytes \(region.fileOffset)+\(region.size) lie beyond the file's \(fileSize)")
            }
            guard region.guestAddress <= UInt64.max - region.size,
                  !regions.contains(where: { $0.guestAddress < region.guestAddress + region.size && region.guestAddress < $0.guestAddress + $0.size })
            else { throw .badRegion(index: index, "overlaps another region") }
            regions.append(region)
        }
        return SnapshotFile(vm: vm, vcpus: vcpus, devices: devices, regions: regions)
    }

    /// Up to `count` bytes from where `fd` is (fewer at the end of the file).
    private static func readNext(_ fd: FileDescriptor, _ count: Int, of path: String) throws(SnapshotFileError) -> [UInt8] {
        do {
            return try readToEnd(fd.rawValue, limit: count, sizeHint: count)
        } catch {
            throw .io("reading \(path)", error)
        }
    }

    /// Maps region `index` of the snapshot open as `fd` private and writable: guest writes stay
    /// in this mapping, the file keeps the snapshot. The caller unmaps it.
    public func mapRegion(_ index: Int, from fd: FileDescriptor) throws(SnapshotFileError) -> UnsafeMutableRawPointer {
        let region = regions[index]
        guard let mapping = mmap(nil, Int(region.size), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.rawValue, off_t(region.fileOffset)),
              mapping != MAP_FAILED
        else { throw .io("mapping memory region \(index)", .current) }
        return mapping
    }
}

/// Length-prefixed byte runs and raw kvm_* structs, on the little-endian writer.
private struct StateWriter {
    private var out = LittleEndianWriter()
    var data: [UInt8] { out.bytes }

    mutating func u32(_ value: UInt32) { out.append(value) }
    mutating func u64(_ value: UInt64) { out.append(value) }
    mutating func bytes(_ value: [UInt8]) {
        out.append(UInt32(value.count))
        out.append(contentsOf: value)
    }
    /// `T` is a plain C struct (kvm_*): its bytes as they are in memory.
    mutating func record<T>(_ value: T) {
        var copy = value
        bytes(withUnsafeBytes(of: &copy) { Array($0) })
    }
}

/// The reader's side: each value names what a short file cut.
private struct StateReader {
    private var input: LittleEndianReader

    init(_ bytes: ArraySlice<UInt8>) { input = LittleEndianReader(bytes) }

    mutating func u32(_ what: String) throws(SnapshotFileError) -> UInt32 {
        guard let value = input.read(UInt32.self) else { throw .truncated(what) }
        return value
    }

    mutating func u64(_ what: String) throws(SnapshotFileError) -> UInt64 {
        guard let value = input.read(UInt64.self) else { throw .truncated(what) }
        return value
    }

    mutating func bytes(_ what: String) throws(SnapshotFileError) -> [UInt8] {
        let count = Int(try u32(what))
        guard let run = input.take(count) else { throw .truncated(what) }
        return Array(run)
    }

    /// A length-prefixed `T` (a plain C struct), refused unless the length is `T`'s size.
    mutating func record<T>(_ what: String, _ type: T.Type) throws(SnapshotFileError) -> T {
        let bytes = try bytes(what)
        guard bytes.count == MemoryLayout<T>.size else {
            throw .recordSize(what, found: bytes.count, expected: MemoryLayout<T>.size)
        }
        let value = UnsafeMutablePointer<T>.allocate(capacity: 1)
        defer { value.deallocate() }
        bytes.withUnsafeBytes { UnsafeMutableRawPointer(value).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        return value.move()
    }
}
