// Whole-file reads and write-all: the one copy of each loop (EINTR, short reads and writes).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads the file at `path` to its end: regular files, pipes, and /proc or /sys files (which
/// report size 0, so the size is only a hint). Stops after `limit` bytes and returns those: a
/// caller that must refuse bigger files asks for one byte more and checks.
public func readWholeFile(_ path: String, limit: Int = .max) throws(Errno) -> [UInt8] {
    let fd = try FileDescriptor.open(path, O_RDONLY)
    let sizeHint = (try? fd.size()) ?? 0
    return try readToEnd(fd.rawValue, limit: limit, sizeHint: sizeHint)
}

/// `readWholeFile` as UTF-8 text (invalid sequences replaced).
public func readWholeTextFile(_ path: String, limit: Int = .max) throws(Errno) -> String {
    String(decoding: try readWholeFile(path, limit: limit), as: UTF8.self)
}

/// Reads descriptor `fd` (not closed) until end of file or `limit` bytes, retrying on EINTR.
public func readToEnd(_ fd: Int32, limit: Int = .max, sizeHint: Int = 0) throws(Errno) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(min(limit, max(sizeHint, 0)))
    var chunk = [UInt8](repeating: 0, count: min(max(sizeHint + 1, 64 * 1024), 1 << 20))
    while bytes.count < limit {
        let want = min(chunk.count, limit - bytes.count)
        let n = try retryingSyscall { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, want) } }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return bytes
}

/// Writes all of `bytes` to descriptor `fd` (not closed), looping over short writes and EINTR.
public func writeAll(_ fd: Int32, _ bytes: some Collection<UInt8>) throws(Errno) {
    let array = Array(bytes)
    var offset = 0
    while offset < array.count {
        let n = try retryingSyscall {
            array.withUnsafeBytes { raw in
                // SAFETY: offset < raw.count, so pointer and length stay inside `array`.
                write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
        }
        guard n > 0 else { throw Errno(EIO) }  // write(2) made no progress on a non-empty buffer
        offset += n
    }
}

/// Writes all of `bytes` to descriptor `fd` (not closed) at `offset`, without moving its file
/// offset (pwrite), looping over short writes and EINTR.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(Errno) {
    guard let base = bytes.baseAddress else { return }
    var done = 0
    while done < bytes.count {
        let n = try retryingSyscall { pwrite(fd, base + done, bytes.count - done, off_t(offset) + off_t(done)) }
        guard n > 0 else { throw Errno(EIO) }  // pwrite(2) made no progress on a non-empty buffer
        done += n
    }
}
