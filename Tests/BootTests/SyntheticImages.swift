/// Builders of small synthetic kernel images for loader tests.
enum Synthetic {
    static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    /// An ELF64 x86-64 file with one PT_LOAD (payload at `paddr`, memsz = payload + bss) and,
    /// if `pvhEntry` is given, a PT_NOTE with the Xen PHYS32_ENTRY note (8-byte descriptor).
    static func elf(
        paddr: UInt64 = 0x100000, payload: [UInt8], bss: Int = 16, entry: UInt64 = 0x100000, pvhEntry: UInt64? = nil
    ) -> [UInt8] {
        let phnum = pvhEntry == nil ? 1 : 2
        let phoff = 64
        let noteOffset = phoff + 56 * phnum
        let note: [UInt8] = {
            guard let pvhEntry else { return [] }
            var n = [UInt8](repeating: 0, count: 12 + 4 + 8)
            put(UInt32(4), at: 0, in: &n)  // namesz "Xen\0"
            put(UInt32(8), at: 4, in: &n)  // descsz
            put(UInt32(18), at: 8, in: &n)  // XEN_ELFNOTE_PHYS32_ENTRY
            n[12] = 0x58; n[13] = 0x65; n[14] = 0x6e; n[15] = 0
            put(pvhEntry, at: 16, in: &n)
            return n
        }()
        let payloadOffset = noteOffset + note.count
        var f = [UInt8](repeating: 0, count: payloadOffset + payload.count)
        f[0] = 0x7f; f[1] = 0x45; f[2] = 0x4c; f[3] = 0x46
        f[4] = 2; f[5] = 1; f[6] = 1
        put(UInt16(2), at: 16, in: &f)  // ET_EXEC
        put(UInt16(62), at: 18, in: &f)  // EM_X86_64
        put(UInt32(1), at: 20, in: &f)
        put(entry, at: 24, in: &f)
        put(UInt64(phoff), at: 32, in: &f)
        put(UInt16(64), at: 52, in: &f)
        put(UInt16(56), at: 54, in: &f)
        put(UInt16(phnum), at: 56, in: &f)
        // PT_LOAD
        put(UInt32(1), at: phoff, in: &f)
        put(UInt32(7), at: phoff + 4, in: &f)
        put(UInt64(payloadOffset), at: phoff + 8, in: &f)
        put(paddr | 0xffff_ffff_8000_0000, at: phoff + 16, in: &f)
        put(paddr, at: phoff + 24, in: &f)
        put(UInt64(payload.count), at: phoff + 32, in: &f)
        put(UInt64(payload.count + bss), at: phoff + 40, in: &f)
        if pvhEntry != nil {
            let p = phoff + 56
            put(UInt32(4), at: p, in: &f)
            put(UInt64(noteOffset), at: p + 8, in: &f)
            put(UInt64(note.count), at: p + 32, in: &f)
            put(UInt64(note.count), at: p + 40, in: &f)
            f.replaceSubrange(noteOffset..<noteOffset + note.count, with: note)
        }
        f.replaceSubrange(payloadOffset..<payloadOffset + payload.count, with: payload)
        return f
    }

    /// A bzImage: one setup sector after the boot sector, then `payload` as the protected-mode kernel.
    static func bzImage(
        payload: [UInt8], version: UInt16 = 0x020f, xloadflags: UInt16 = 0x1, initSize: UInt32 = 0x10000
    ) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 1024)
        f[0x1f1] = 1  // setup_sects
        put(UInt16(0xaa55), at: 0x1fe, in: &f)
        f[0x201] = 0x66  // header ends at 0x202 + 0x66 = 0x268
        put(UInt32(0x5372_6448), at: 0x202, in: &f)
        put(version, at: 0x206, in: &f)
        f[0x211] = 0x01  // LOADED_HIGH
        put(UInt32(0x7fff_ffff), at: 0x22c, in: &f)  // initrd_addr_max
        put(xloadflags, at: 0x236, in: &f)
        put(initSize, at: 0x260, in: &f)
        return f + payload
    }
}
