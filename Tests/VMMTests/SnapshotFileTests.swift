import CKVM
import Glibc
import GuestMemory
import SystemSupport
import Testing
import VMM

/// The snapshot file's checks: damaged files are refused with the reason, before anything reaches
/// KVM. (VMSnapshotTests restores VMs from good ones.)
@Suite struct SnapshotFileTests {
    /// A tiny guest's VM, built and saved before it ran, in a new file; returns the file's path.
    static func savedVM() throws -> String {
        let vm = try VirtualMachine(config: VMConfig(memorySize: 1 << 20, payload: .realMode(code: [0xeb, 0xfe], address: 0x1000)))
        let path = "/tmp/kata-snapshot-file-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try vm.saveSnapshot(to: path)
        return path
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

    @Test func aGoodFileReadsBack() throws {
        let path = try Self.savedVM()
        defer { unlink(path) }
        let (snapshot, _) = try SnapshotFile.read(from: path)
        #expect(snapshot.vm != nil)
        #expect(snapshot.vcpus.count == 1)
        #expect(snapshot.vcpus[0].registers.rip == 0x1000)
        #expect(snapshot.regions.count == 1)
        #expect(snapshot.regions.first?.size == 1 << 20)
    }

    @Test func pagesOfZerosAreHolesAndReadBackAsZeros() throws {
        let vm = try VirtualMachine(config: VMConfig(memorySize: 4 << 20, payload: .realMode(code: [0xeb, 0xfe], address: 0x1000)))
        try vm.memory.write([UInt8](repeating: 0xa5, count: 3 * 4096 + 7), at: GuestAddress(0x20000))
        let path = "/tmp/kata-snapshot-sparse-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(path) }
        try vm.saveSnapshot(to: path)
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_size > 4 << 20)
        // The code page, the four written pages and the header: far less than the 4 MiB of RAM.
        #expect(st.st_blocks * 512 < 256 * 1024, "\(st.st_blocks * 512) bytes allocated")
        let (snapshot, fd) = try SnapshotFile.read(from: path)
        let memory = try MmapGuestMemory(snapshot: snapshot, fd: fd)
        #expect(try memory.read(count: 3 * 4096 + 8, at: GuestAddress(0x20000)) == [UInt8](repeating: 0xa5, count: 3 * 4096 + 7) + [0])
        #expect(try memory.read(count: 2, at: GuestAddress(0x1000)) == [0xeb, 0xfe])
        #expect(try memory.read(count: 4096, at: GuestAddress(0x300000)) == [UInt8](repeating: 0, count: 4096))
    }

    @Test func damagedFilesAreRefusedWithTheReason() throws {
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
             .badRegion(index: 0, "bytes 12288+1048576 lie beyond the file's 16384")),
        ]
        for (name, damage, expected) in cases {
            let path = try Self.savedVM()
            defer { unlink(path) }
            try damage(path)
            #expect(throws: expected, "\(name)") { _ = try SnapshotFile.read(from: path) }
        }
    }
}
