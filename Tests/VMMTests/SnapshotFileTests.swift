import CKVM
import Glibc
import KVM
import SystemSupport
import Testing
import VMM

/// The snapshot file: a tiny guest saved mid-run is restored from the file into a fresh VM and
/// carries on; damaged files are refused with the reason, before anything reaches KVM.
@Suite struct SnapshotFileTests {
    static let size = 0x10000
    /// Real mode, forever: the word at 0x2000 incremented, then written to port 0x10.
    static let counterLoop: [UInt8] = [0xa1, 0x00, 0x20, 0x40, 0xa3, 0x00, 0x20, 0xe7, 0x10, 0xeb, 0xf5]

    /// A VM with irqchip and PIT whose RAM is `memory` at guest address 0.
    static func makeVM(_ kvm: Kvm, memory: UnsafeMutableRawPointer) throws -> VM {
        let vm = try kvm.createVM()
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: UInt64(size), hostAddress: memory)
        try vm.setIdentityMapAddress(0xfffb_c000)
        try vm.setTSSAddress(0xfffb_d000)
        try vm.createIRQChip()
        try vm.createPIT()
        return vm
    }

    static func next(_ vcpu: Vcpu) throws -> VcpuExit {
        while true {
            let exit = try vcpu.runOnce()
            if exit != .interrupted { return exit }
        }
    }

    static func out(_ value: UInt8) -> VcpuExit { .ioOut(port: 0x10, size: 2, data: [value, 0]) }

    /// Runs the counter to 3 in a fresh VM and saves it to a new file; returns the file's path.
    static func savedCounter(_ kvm: Kvm) throws -> String {
        let memory = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(memory, size) }
        (memory + 0x1000).copyMemory(from: counterLoop, byteCount: counterLoop.count)
        let vm = try makeVM(kvm, memory: memory)
        let vcpu = try vm.createVcpu(id: 0)
        var sregs = try vcpu.specialRegisters()
        sregs.cs.base = 0
        sregs.cs.selector = 0
        try vcpu.setSpecialRegisters(sregs)
        var regs = try vcpu.registers()
        regs.rip = 0x1000
        regs.rflags = 0x2
        try vcpu.setRegisters(regs)
        for value in 1...3 { #expect(try next(vcpu) == out(UInt8(value))) }
        let path = "/tmp/kata-snapshot-file-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try SnapshotFile.write(
            to: path, vm: try vm.captureState(), vcpus: [try vcpu.captureState(msrIndices: try kvm.msrIndexList())],
            memory: [(guestAddress: 0, bytes: UnsafeRawBufferPointer(start: memory, count: size))])
        return path
    }

    @Test func aVMRestoredFromTheFileCarriesOn() throws {
        let kvm = try Kvm()
        let path = try Self.savedCounter(kvm)
        defer { unlink(path) }
        let (snapshot, fd) = try SnapshotFile.read(from: path)
        #expect(snapshot.vcpus.count == 1)
        let region = try #require(snapshot.regions.first)
        #expect(snapshot.regions.count == 1)
        #expect(region.guestAddress == 0 && region.size == UInt64(Self.size) && region.fileOffset % 4096 == 0)
        let memory = try snapshot.mapRegion(0, from: fd)
        defer { munmap(memory, Self.size) }
        let vm = try Self.makeVM(kvm, memory: memory)
        try vm.restoreState(try #require(snapshot.vm))
        let vcpu = try vm.createVcpu(id: 0)
        try vcpu.restoreState(snapshot.vcpus[0])
        #expect(try Self.next(vcpu) == Self.out(4))
        #expect(try Self.next(vcpu) == Self.out(5))
        // Restored twice from one file: each clone starts at the snapshot.
        let memory2 = try snapshot.mapRegion(0, from: fd)
        defer { munmap(memory2, Self.size) }
        let vm2 = try Self.makeVM(kvm, memory: memory2)
        try vm2.restoreState(try #require(snapshot.vm))
        let vcpu2 = try vm2.createVcpu(id: 0)
        try vcpu2.restoreState(snapshot.vcpus[0])
        #expect(try Self.next(vcpu2) == Self.out(4))
    }

    /// Overwrites `bytes` at `offset` of the file at `path`, or cuts the file to `offset`.
    static func damage(_ path: String, at offset: Int, with bytes: [UInt8]? = nil) throws {
        let fd = try FileDescriptor.open(path, O_RDWR)
        if let bytes {
            #expect(pwrite(fd.rawValue, bytes, bytes.count, off_t(offset)) == bytes.count)
        } else {
            #expect(ftruncate(fd.rawValue, off_t(offset)) == 0)
        }
    }

    static func le32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    @Test func damagedFilesAreRefusedWithTheReason() throws {
        let kvm = try Kvm()
        // Header: magic 0..<8, version 8, vCPUs 12, regions 16, state length 20..<28; state from
        // 28: has-VM flag, then the PIC master's length at 32.
        let cases: [(String, (String) throws -> Void, SnapshotFileError)] = [
            ("not a snapshot", { try Self.damage($0, at: 0, with: Array("NOTSNAP!".utf8)) }, .notASnapshot),
            ("another version", { try Self.damage($0, at: 8, with: Self.le32(9)) }, .unsupportedVersion(9)),
            ("a thousand vCPUs", { try Self.damage($0, at: 12, with: Self.le32(1000)) }, .tooMany("vCPUs", 1000)),
            ("a short record", { try Self.damage($0, at: 32, with: Self.le32(UInt32(MemoryLayout<kvm_irqchip>.size - 1))) },
             .recordSize("PIC master", found: MemoryLayout<kvm_irqchip>.size - 1, expected: MemoryLayout<kvm_irqchip>.size)),
            ("cut inside the state", { try Self.damage($0, at: 100) }, .truncated("the state")),
            ("cut inside guest RAM", { try Self.damage($0, at: 4096 * 4) },
             .badRegion(index: 0, "bytes 12288+65536 lie beyond the file's 16384")),
        ]
        for (name, damage, expected) in cases {
            let path = try Self.savedCounter(kvm)
            defer { unlink(path) }
            try damage(path)
            #expect(throws: expected, "\(name)") { _ = try SnapshotFile.read(from: path) }
        }
    }
}
