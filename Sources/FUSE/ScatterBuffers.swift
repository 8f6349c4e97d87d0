// The caller's request and reply buffers: lists of memory segments (virtqueue descriptors, vhost-user
// guest memory, or plain arrays in tests). The server reads and writes only inside them.

import Glibc

/// The bytes of one request, possibly spread over several segments (the device-readable part of a
/// virtio-fs descriptor chain). The memory may be guest memory that a hostile guest changes while
/// we look at it, so the server copies header and arguments out once and parses only the copy.
public struct FUSERequestBuffers {
    public let segments: [UnsafeRawBufferPointer]
    public let count: Int

    public init(_ segments: [UnsafeRawBufferPointer]) {
        self.segments = segments
        count = segments.reduce(0) { $0 + $1.count }
    }

    /// Copies bytes `0..<min(limit, count)` into a private array.
    func copyPrefix(_ limit: Int) -> [UInt8] {
        let total = min(limit, count)
        var result = [UInt8]()
        result.reserveCapacity(total)
        for segment in segments where result.count < total {
            result.append(contentsOf: segment.prefix(total - result.count))
        }
        return result
    }

    /// iovecs covering `count` bytes starting at `offset`; nil when that range is not inside.
    func iovecs(from offset: Int, count wanted: Int) -> [iovec]? {
        guard offset >= 0, wanted >= 0, offset <= count, wanted <= count - offset else { return nil }
        return scatterIovecs(segments.map { ($0.baseAddress, $0.count) }, from: offset, count: wanted)
    }
}

/// Where a reply goes: the device-writable segments of a descriptor chain. The reply header is
/// written last, once the payload length is known.
public struct FUSEReplyBuffers {
    public let segments: [UnsafeMutableRawBufferPointer]
    public let capacity: Int

    public init(_ segments: [UnsafeMutableRawBufferPointer]) {
        self.segments = segments
        capacity = segments.reduce(0) { $0 + $1.count }
    }

    /// Copies `bytes` to `offset...`; the caller has checked that they fit.
    func write<C: Collection<UInt8>>(_ bytes: C, at offset: Int) {
        precondition(offset >= 0 && bytes.count <= capacity - offset, "reply bounds checked by caller")
        var skip = offset
        var source = bytes[...]
        for segment in segments where !source.isEmpty {
            if skip >= segment.count {
                skip -= segment.count
                continue
            }
            let take = min(segment.count - skip, source.count)
            let end = source.index(source.startIndex, offsetBy: take)
            UnsafeMutableRawBufferPointer(rebasing: segment[skip..<skip + take]).copyBytes(from: source[..<end])
            source = source[end...]
            skip = 0
        }
    }

    /// iovecs covering `count` bytes at `offset...`, for reading file data straight into the reply.
    func iovecs(from offset: Int, count wanted: Int) -> [iovec]? {
        guard offset >= 0, wanted >= 0, offset <= capacity, wanted <= capacity - offset else { return nil }
        return scatterIovecs(
            segments.map { (UnsafeRawPointer($0.baseAddress), $0.count) }, from: offset, count: wanted)
    }
}

/// Cuts `count` bytes at `offset` out of a segment list, skipping empty pieces.
private func scatterIovecs(_ segments: [(UnsafeRawPointer?, Int)], from offset: Int, count: Int) -> [iovec] {
    var result: [iovec] = []
    var skip = offset
    var left = count
    for (base, length) in segments where left > 0 {
        if skip >= length {
            skip -= length
            continue
        }
        let take = min(length - skip, left)
        if let base, take > 0 {
            result.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: base + skip), iov_len: take))
        }
        left -= take
        skip = 0
    }
    return result
}
