import GuestMemory

/// Loads an x86-64 vmlinux ELF: PT_LOAD segments at their physical addresses, entry from the
/// PVH note (XEN_ELFNOTE_PHYS32_ENTRY, note name "Xen", type 18) when present, else e_entry.
public enum ElfLoader {
    static let ptLoad: UInt32 = 1
    static let ptNote: UInt32 = 4
    static let xenElfnotePhys32Entry: UInt32 = 18
    static let machineX86_64: UInt16 = 62

    public static func load(_ image: [UInt8], into memory: some GuestMemory) throws(BootError) -> LoadedKernel {
        guard image.count >= 64, image[0..<4] == [0x7f, 0x45, 0x4c, 0x46] else { throw .elf("no ELF magic") }
        guard image[4] == 2 else { throw .elf("not a 64-bit ELF (class \(image[4]))") }
        guard image[5] == 1 else { throw .elf("not little-endian") }
        guard let machine = image.le(UInt16.self, at: 18), machine == machineX86_64 else {
            throw .elf("not an x86-64 ELF")
        }
        guard let entry = image.le(UInt64.self, at: 24), let phoff = image.le(UInt64.self, at: 32),
            let phentsize = image.le(UInt16.self, at: 54), let phnum = image.le(UInt16.self, at: 56)
        else { throw .elf("truncated header") }
        guard phentsize >= 56 else { throw .elf("program header size \(phentsize) < 56") }
        guard phnum > 0 else { throw .elf("no program headers") }
        let (tableEnd, o1) = phoff.addingReportingOverflow(UInt64(phentsize) * UInt64(phnum))
        guard !o1, tableEnd <= UInt64(image.count) else { throw .elf("program headers beyond end of file") }

        var pvhEntry: UInt64? = nil
        var lowest = UInt64.max
        var highest: UInt64 = 0
        for i in 0..<Int(phnum) {
            let base = Int(phoff) + i * Int(phentsize)
            guard let type = image.le(UInt32.self, at: base), let offset = image.le(UInt64.self, at: base + 8),
                let paddr = image.le(UInt64.self, at: base + 24), let filesz = image.le(UInt64.self, at: base + 32),
                let memsz = image.le(UInt64.self, at: base + 40)
            else { throw .elf("truncated program header \(i)") }
            let (fileEnd, o2) = offset.addingReportingOverflow(filesz)
            guard !o2, fileEnd <= UInt64(image.count) else { throw .elf("segment \(i) extends beyond end of file") }
            switch type {
            case ptLoad:
                guard filesz <= memsz else { throw .elf("segment \(i) file size exceeds memory size") }
                guard paddr >= Layout.highMemoryStart else {
                    throw .elf("segment \(i) at 0x\(String(paddr, radix: 16)) is below 1 MiB")
                }
                let (end, o3) = paddr.addingReportingOverflow(memsz)
                guard !o3, memory.contains(GuestAddress(paddr), count: memsz) else {
                    throw .kernelDoesNotFit(start: paddr, end: o3 ? .max : end, memory: memory.totalSize)
                }
                try mem { try memory.write(image[Int(offset)..<Int(fileEnd)], at: GuestAddress(paddr)) }
                if memsz > filesz {
                    try mem { try memory.zero(at: GuestAddress(paddr + filesz), count: Int(memsz - filesz)) }
                }
                lowest = min(lowest, paddr)
                highest = max(highest, end)
            case ptNote:
                if let found = try pvhEntryNote(image, from: Int(offset), to: Int(fileEnd)) { pvhEntry = found }
            default:
                break
            }
        }
        guard highest > 0 else { throw .elf("no loadable segment") }
        return LoadedKernel(
            entry: pvhEntry.map(KernelEntry.pvh) ?? .linux64(entry), start: lowest, end: highest,
            setupHeader: nil, initrdAddressMax: 0x7fff_ffff)
    }

    /// Scans one PT_NOTE segment for the PVH entry note.
    static func pvhEntryNote(_ image: [UInt8], from start: Int, to end: Int) throws(BootError) -> UInt64? {
        var p = start
        func align4(_ n: Int) -> Int { (n + 3) & ~3 }
        while p + 12 <= end {
            guard let namesz = image.le(UInt32.self, at: p), let descsz = image.le(UInt32.self, at: p + 4),
                let type = image.le(UInt32.self, at: p + 8)
            else { throw .elf("truncated note") }
            guard namesz <= 0x1000, descsz <= 0x10000 else { throw .elf("note sizes out of range") }
            let nameStart = p + 12
            let descStart = nameStart + align4(Int(namesz))
            let next = descStart + align4(Int(descsz))
            guard next <= end else { throw .elf("note extends beyond its segment") }
            let name = image[nameStart..<nameStart + Int(namesz)]
            if type == xenElfnotePhys32Entry && Array(name) == Array("Xen\0".utf8) {
                switch descsz {
                case 4: return image.le(UInt32.self, at: descStart).map(UInt64.init)
                case 8: return image.le(UInt64.self, at: descStart)
                default: throw .elf("PVH entry note has \(descsz)-byte descriptor")
                }
            }
            p = next
        }
        return nil
    }
}
