import FUSE
import GuestMemory
import VirtIO

/// Host views of a validated descriptor chain's buffers, handed to the FUSE server as they are:
/// the readable part as its request segments, the writable part as its reply segments, so READ
/// and WRITE data move between guest RAM and the host file without a bounce copy.
///
/// `GuestMemory` lends a pointer only for the duration of a closure, so the buffers are pinned by
/// nesting one `withUnsafeMutableBytes` per buffer; the depth is bounded by `maxSegments`.
enum ChainBuffers {
    /// Most buffers (readable + writable) one request may use. Linux's virtio-fs driver uses at
    /// most max_pages (256) data pages plus a few header segments; a chain beyond this limit gets
    /// an E2BIG reply instead of being pinned.
    static let maxSegments = 1024

    /// Runs `body` with the chain's readable and writable buffers as host pointers.
    /// Every buffer was checked against guest RAM when the queue parsed the chain; the memory
    /// API checks again.
    static func withBuffers<R>(
        of chain: DescriptorChain, in memory: any GuestMemory,
        _ body: (FUSERequestBuffers, FUSEReplyBuffers) throws -> R
    ) throws -> R {
        precondition(chain.readable.count + chain.writable.count <= maxSegments, "segment count checked by caller")
        var pinned: [UnsafeMutableRawBufferPointer] = []
        pinned.reserveCapacity(chain.readable.count + chain.writable.count)
        return try pin(chain.readable + chain.writable, from: 0, in: memory, into: &pinned) { all in
            let readable = all.prefix(chain.readable.count).map { UnsafeRawBufferPointer($0) }
            let writable = Array(all.suffix(chain.writable.count))
            return try body(FUSERequestBuffers(readable), FUSEReplyBuffers(writable))
        }
    }

    private static func pin<R>(
        _ buffers: [GuestBuffer], from index: Int, in memory: any GuestMemory,
        into pinned: inout [UnsafeMutableRawBufferPointer], _ body: ([UnsafeMutableRawBufferPointer]) throws -> R
    ) throws -> R {
        guard index < buffers.count else { return try body(pinned) }
        let buffer = buffers[index]
        return try memory.withUnsafeMutableBytes(at: buffer.address, count: Int(buffer.length)) { bytes in
            // SAFETY: `bytes` is used only inside this closure and the ones nested in it; `body`
            // runs innermost, so every pinned pointer is still lent when the FUSE server uses it.
            pinned.append(bytes)
            return try pin(buffers, from: index + 1, in: memory, into: &pinned, body)
        }
    }
}
