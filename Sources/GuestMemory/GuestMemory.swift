/// Errors of guest memory access. The message names the offending range so a broken
/// descriptor chain or loader bug can be found from a log line.
public enum GuestMemoryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The range [address, address+length) is not entirely inside one RAM region.
    case outOfBounds(address: GuestAddress, length: UInt64)
    /// address + length does not fit in 64 bits.
    case overflow(address: GuestAddress, length: UInt64)

    public var description: String {
        switch self {
        case .outOfBounds(let a, let n): "guest range \(a)+\(n) is outside guest RAM"
        case .overflow(let a, let n): "guest range \(a)+\(n) overflows the address space"
        }
    }
}

/// The consumer side of guest physical memory: what loaders and devices need.
///
/// Only the VMM knows how the memory is provided (anonymous mmap, memfd shared with
/// a vhost-user peer, a plain heap buffer in tests). Every access is bounds-checked:
/// a range must lie inside a single contiguous region, so one host pointer covers it.
///
/// A provider supplies its regions and where each one starts in this process (as vm-memory's
/// `GuestMemoryRegion` does); the region lookup and every access are written once, below.
public protocol GuestMemory: AnyObject, Sendable {
    /// The RAM regions, sorted by guest address, not overlapping.
    var regions: [GuestRegion] { get }

    /// Host address of the first byte of region `index`: `regions[index].size` bytes are mapped
    /// there for the memory's lifetime. For the lookup below and for KVM memory slots; devices
    /// and loaders use the bounds-checked accessors instead.
    func hostAddress(ofRegion index: Int) -> UnsafeMutableRawPointer

    /// Runs `body` with host access to the guest range [address, address+count).
    /// Throws when the range is not wholly inside one region. The pointer must not escape `body`.
    /// Providers take the default, which looks the range up in `regions`.
    func withUnsafeMutableBytes<R>(
        at address: GuestAddress, count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R

    /// Gives the host memory behind [address, address+count) back to the host (free page
    /// reporting): afterwards the range reads as zeros. The range must lie inside one region.
    /// The default zeroes it, which is correct but reclaims nothing; providers that own their
    /// mappings drop the pages instead.
    func discard(at address: GuestAddress, count: Int) throws
}

/// One contiguous range of guest RAM.
public struct GuestRegion: Sendable, Equatable {
    public var start: GuestAddress
    public var size: UInt64

    public init(start: GuestAddress, size: UInt64) {
        self.start = start
        self.size = size
    }

    /// One past the last byte; nil only for a region that ends exactly at 2^64.
    public var end: GuestAddress? { start.checkedAdding(size) }

    /// Offset of [address, address+count) inside this region, or nil when it is not wholly inside.
    public func offset(of address: GuestAddress, count: UInt64) -> UInt64? {
        guard address >= start else { return nil }
        let offset = address.rawValue - start.rawValue
        guard offset <= size, count <= size - offset else { return nil }
        return offset
    }
}

extension GuestMemory {
    public func withUnsafeMutableBytes<R>(
        at address: GuestAddress, count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        guard count >= 0 else { throw GuestMemoryError.outOfBounds(address: address, length: 0) }
        try checkRange(address, count: UInt64(count))
        for (index, region) in regions.enumerated() {
            if let offset = region.offset(of: address, count: UInt64(count)) {
                // SAFETY: [offset, offset+count) lies inside region `index`, and the provider maps
                // the region's whole size at `hostAddress(ofRegion:)` for as long as it lives.
                return try body(UnsafeMutableRawBufferPointer(start: hostAddress(ofRegion: index) + Int(offset), count: count))
            }
        }
        throw GuestMemoryError.outOfBounds(address: address, length: UInt64(count))
    }

    public func discard(at address: GuestAddress, count: Int) throws {
        try zero(at: address, count: count)
    }

    /// Total RAM in bytes.
    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.size } }

    /// Whether [address, address+count) lies inside one region.
    public func contains(_ address: GuestAddress, count: UInt64) -> Bool {
        regions.contains { $0.offset(of: address, count: count) != nil }
    }

    /// Validates a range and returns the error to throw for it, if any.
    public func checkRange(_ address: GuestAddress, count: UInt64) throws(GuestMemoryError) {
        guard address.checkedAdding(count) != nil else {
            throw .overflow(address: address, length: count)
        }
        guard contains(address, count: count) else {
            throw .outOfBounds(address: address, length: count)
        }
    }

    /// Copies `bytes` into guest memory at `address`: one memcpy for contiguous collections
    /// (arrays and their slices: kernel and initrd images), element by element otherwise.
    public func write(_ bytes: some Collection<UInt8>, at address: GuestAddress) throws {
        try withUnsafeMutableBytes(at: address, count: bytes.count) { dst in
            let copied: Void? = bytes.withContiguousStorageIfAvailable { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(src))
            }
            if copied == nil { _ = dst.initializeMemory(as: UInt8.self, from: bytes) }
        }
    }

    /// Copies `count` bytes out of guest memory.
    public func read(count: Int, at address: GuestAddress) throws -> [UInt8] {
        try withUnsafeMutableBytes(at: address, count: count) { src in Array(src) }
    }

    /// Copies guest memory into `buffer`.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at address: GuestAddress) throws {
        try withUnsafeMutableBytes(at: address, count: buffer.count) { src in
            buffer.copyMemory(from: UnsafeRawBufferPointer(src))
        }
    }

    /// Fills [address, address+count) with zeros.
    public func zero(at address: GuestAddress, count: Int) throws {
        try withUnsafeMutableBytes(at: address, count: count) { dst in
            _ = dst.initializeMemory(as: UInt8.self, repeating: 0)
        }
    }

    /// Reads a little-endian integer (guest byte order on x86). Unaligned addresses are fine.
    public func load<T: FixedWidthInteger>(_: T.Type = T.self, at address: GuestAddress) throws -> T {
        try withUnsafeMutableBytes(at: address, count: MemoryLayout<T>.size) { src in
            T(littleEndian: src.loadUnaligned(as: T.self))
        }
    }

    /// Writes a little-endian integer.
    public func store<T: FixedWidthInteger>(_ value: T, at address: GuestAddress) throws {
        try withUnsafeMutableBytes(at: address, count: MemoryLayout<T>.size) { dst in
            dst.storeBytes(of: value.littleEndian, as: T.self)
        }
    }
}
