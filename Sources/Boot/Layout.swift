// Boot: kernel loaders and boot structures. Every guest address the VMM uses is defined here.

/// The guest physical memory map of our microVM (x86-64), after Firecracker's `layout.rs`.
///
/// ```
/// 0x0000_0500  GDT (4 entries; 6 with ring-3 segments)   0x0000_0540  IDT (empty)
/// 0x0000_1000  probe guest code           0x0000_1100  its SYSCALL handler (tiny guests only)
/// 0x0000_6000  PVH hvm_start_info         0x0000_6040  PVH module list (initrd)
/// 0x0000_7000  zero page (boot_params) or PVH memory map (one or the other)
/// 0x0000_8ff0  boot stack top
/// 0x0000_9000  PML4   0x0000_a000 PDPT   0x0000_b000 PD (identity map of the first 1 GiB)
/// 0x0002_0000  kernel command line (2 KiB)
/// 0x0009_fc00  MP table (end of low RAM; reserved in e820 up to 1 MiB)
/// 0x0010_0000  kernel (ELF segments at their physical addresses, or the bzImage at 1 MiB)
///   ...        initrd at the top of RAM below the 32-bit hole
/// 0xc000_0000  32-bit MMIO hole: boot timer, virtio-mmio windows (4 KiB each)
/// 0xfffb_c000  KVM identity-map page, 0xfffb_d000 KVM TSS (3 pages)
/// 0x1_0000_0000  RAM beyond 3 GiB continues here
/// ```
public enum Layout {
    public static let gdtStart: UInt64 = 0x500
    /// After room for 8 GDT entries.
    public static let idtStart: UInt64 = 0x540
    public static let pvhInfoStart: UInt64 = 0x6000
    public static let pvhModlistStart: UInt64 = 0x6040
    public static let pvhMemmapStart: UInt64 = 0x7000
    public static let zeroPageStart: UInt64 = 0x7000
    public static let bootStackPointer: UInt64 = 0x8ff0
    public static let pml4Start: UInt64 = 0x9000
    public static let pdptStart: UInt64 = 0xa000
    public static let pdStart: UInt64 = 0xb000
    /// Tiny probe guests (no kernel, no boot structures but the GDT and page tables): their
    /// code, and the ring-3 probe's SYSCALL handler (LSTAR).
    public static let probeCodeStart: UInt64 = 0x1000
    public static let probeSyscallHandlerStart: UInt64 = 0x1100
    public static let cmdlineStart: UInt64 = 0x20000
    /// x86 COMMAND_LINE_SIZE, including the terminating NUL.
    public static let cmdlineMaxSize: Int = 2048
    /// End of conventional low RAM; the MP table lives in its last KiB.
    public static let ebdaStart: UInt64 = 0x9fc00
    public static let mpTableStart: UInt64 = 0x9fc00
    public static let highMemoryStart: UInt64 = 0x10_0000
    /// Start and size of the 32-bit MMIO hole (no RAM there).
    public static let mmioHoleStart: UInt64 = 0xc000_0000
    public static let mmioHoleSize: UInt64 = 0x4000_0000
    public static let ramAbove4GStart: UInt64 = 0x1_0000_0000
    /// Boot-timer device (Firecracker's address): init writes 123 here.
    public static let bootTimerMMIO: UInt64 = 0xc000_0000
    /// First virtio-mmio window and window size; device i is at start + i*size with IRQ firstVirtioIRQ+i.
    public static let virtioMMIOStart: UInt64 = 0xd000_0000
    public static let virtioMMIOSize: UInt64 = 0x1000
    public static let firstVirtioIRQ: UInt32 = 5
    /// virtio-mmio devices that get an IOAPIC line of their own (GSI 5...23).
    public static let maxVirtioDevices = 19
    /// KVM's own pages for VMX real mode (outside RAM, inside the hole).
    public static let kvmIdentityMapStart: UInt64 = 0xfffb_c000
    public static let kvmTSSStart: UInt64 = 0xfffb_d000
    /// Legacy devices.
    public static let serialPort: UInt64 = 0x3f8
    public static let serialPortSize: UInt64 = 8
    public static let serialIRQ: UInt32 = 4
    public static let i8042Port: UInt64 = 0x60
    public static let i8042PortSize: UInt64 = 5
    /// Alignment of the initrd start.
    public static let pageSize: UInt64 = 0x1000

    /// RAM regions for `size` bytes of guest memory: below the 32-bit hole, then above 4 GiB.
    public static func ramRegions(size: UInt64) -> [(start: UInt64, size: UInt64)] {
        if size <= mmioHoleStart { return [(0, size)] }
        return [(0, mmioHoleStart), (ramAbove4GStart, size - mmioHoleStart)]
    }
}
