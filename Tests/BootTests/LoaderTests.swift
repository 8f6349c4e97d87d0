import Boot
import GuestMemory
import Testing

let marker: [UInt8] = [0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04]

@Test func elfWithPVHNoteLoadsSegmentZeroesBssAndEntersPVH() throws {
    let memory = HeapGuestMemory(size: 4 << 20)
    try memory.write([UInt8](repeating: 0xaa, count: 64), at: GuestAddress(0x100000))
    let image = Synthetic.elf(payload: marker, bss: 16, entry: 0x100000, pvhEntry: 0x100004)
    let kernel = try KernelLoader.load(image, into: memory)
    #expect(kernel.entry == .pvh(0x100004))
    #expect(kernel.start == 0x100000)
    #expect(kernel.end == 0x100000 + 24)
    #expect(try memory.read(count: 8, at: GuestAddress(0x100000)) == marker)
    #expect(try memory.read(count: 16, at: GuestAddress(0x100008)) == [UInt8](repeating: 0, count: 16))
    #expect(try memory.read(count: 1, at: GuestAddress(0x100018)) == [0xaa])  // past memsz untouched
}

@Test func elfWithoutNoteUsesLinux64Entry() throws {
    let memory = HeapGuestMemory(size: 4 << 20)
    let kernel = try ElfLoader.load(Synthetic.elf(payload: marker, entry: 0x100200), into: memory)
    #expect(kernel.entry == .linux64(0x100200))
}

@Test func elfSegmentBelowOneMiBIsRefused() {
    let memory = HeapGuestMemory(size: 4 << 20)
    #expect(throws: BootError.self) { try ElfLoader.load(Synthetic.elf(paddr: 0x8000, payload: marker), into: memory) }
}

@Test func elfSegmentBeyondMemoryIsRefused() {
    let memory = HeapGuestMemory(size: 2 << 20)
    let image = Synthetic.elf(paddr: 0x1f_fffc, payload: marker)
    #expect(throws: BootError.kernelDoesNotFit(start: 0x1f_fffc, end: 0x1f_fffc + 24, memory: 2 << 20)) {
        try ElfLoader.load(image, into: memory)
    }
}

@Test func truncatedOrForeignElfIsRefused() {
    let memory = HeapGuestMemory(size: 4 << 20)
    var image = Synthetic.elf(payload: marker)
    #expect(throws: BootError.self) { try ElfLoader.load(Array(image.prefix(100)), into: memory) }
    image[4] = 1  // 32-bit class
    #expect(throws: BootError.elf("not a 64-bit ELF (class 1)")) { try ElfLoader.load(image, into: memory) }
    var lying = Synthetic.elf(payload: marker)
    Synthetic.put(UInt64(1 << 40), at: 64 + 32, in: &lying)  // p_filesz far beyond the file
    #expect(throws: BootError.elf("segment 0 extends beyond end of file")) { try ElfLoader.load(lying, into: memory) }
}

@Test func bzImageLoadsProtectedModeKernelAtOneMiB() throws {
    let memory = HeapGuestMemory(size: 4 << 20)
    let kernel = try KernelLoader.load(Synthetic.bzImage(payload: marker), into: memory)
    #expect(kernel.entry == .linux64(0x100200))
    #expect(try memory.read(count: 8, at: GuestAddress(0x100000)) == marker)
    #expect(kernel.end == 0x100000 + 0x10000)  // init_size
    #expect(kernel.setupHeader?.count == 0x268 - 0x1f1)
    #expect(kernel.initrdAddressMax == 0x7fff_ffff)
}

@Test func bzImageWithOldProtocolOrNo64BitEntryIsRefused() {
    let memory = HeapGuestMemory(size: 4 << 20)
    #expect(throws: BootError.self) { try BzImageLoader.load(Synthetic.bzImage(payload: marker, version: 0x0206), into: memory) }
    #expect(throws: BootError.bzImage("kernel has no 64-bit entry point (XLF_KERNEL_64)")) {
        try BzImageLoader.load(Synthetic.bzImage(payload: marker, xloadflags: 0), into: memory)
    }
}

@Test func bzImageWhoseInitSizeExceedsMemoryIsRefused() {
    let memory = HeapGuestMemory(size: 2 << 20)
    #expect(throws: BootError.kernelDoesNotFit(start: 0x100000, end: 0x100000 + 0x200000, memory: 2 << 20)) {
        try BzImageLoader.load(Synthetic.bzImage(payload: marker, initSize: 0x200000), into: memory)
    }
}

@Test func garbageIsNotAKernel() {
    let memory = HeapGuestMemory(size: 4 << 20)
    #expect(throws: BootError.self) { try KernelLoader.load([UInt8](repeating: 0x90, count: 4096), into: memory) }
    #expect(throws: BootError.self) { try KernelLoader.load([], into: memory) }
}
