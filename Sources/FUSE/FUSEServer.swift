// The FUSE server: request bytes in, reply bytes out. Parses strictly, keeps the session state
// machine (INIT first, DESTROY last), and maps every failure to an errno reply.

import Glibc
import Synchronization

public struct FUSEServerConfiguration: Sendable {
    /// Largest WRITE payload (and READ reply) accepted; the guest learns it in INIT.
    public var maxWrite: UInt32
    public var maxReadahead: UInt32

    public init(maxWrite: UInt32 = 1 << 20, maxReadahead: UInt32 = 1 << 20) {
        self.maxWrite = min(max(maxWrite, 4096), FUSEProtocol.maxMaxPages * FUSEProtocol.pageSize)
        self.maxReadahead = maxReadahead
    }
}

/// What `handle` did with a request.
public enum FUSEOutcome: Equatable, Sendable {
    /// A reply of this many bytes was written to the reply buffers.
    case replied(Int)
    /// The operation takes no reply (FORGET, BATCH_FORGET).
    case noReply
    /// A reply was due but the reply buffers cannot hold even its header.
    case replyBufferTooSmall
}

/// The negotiated session: INIT must come first; after DESTROY a new INIT may start over.
enum FUSESession: Equatable {
    case awaitingInit
    case running(minor: UInt32, flags: UInt64)
}

public final class FUSEServer: Sendable {
    public let fileSystem: PassthroughFileSystem
    public let configuration: FUSEServerConfiguration
    let session = Mutex(FUSESession.awaitingInit)

    /// Largest request other than WRITE: SETXATTR with a 64 KiB value and a 255-byte name.
    static let maxRequestBytes = FUSEProtocol.inHeaderSize + 16 + 256 + FUSERequest.xattrSizeMax
    static let writeHeaderBytes = FUSEProtocol.inHeaderSize + 40

    public init(fileSystem: PassthroughFileSystem, configuration: FUSEServerConfiguration = FUSEServerConfiguration()) {
        self.fileSystem = fileSystem
        self.configuration = configuration
    }

    /// Whether a guest's INIT started a session that has not ended.
    public var hasSession: Bool {
        session.withLock { if case .running = $0 { true } else { false } }
    }

    /// Handles one request. Safe to call from several threads at once (one per virtqueue).
    public func handle(_ request: FUSERequestBuffers, reply: FUSEReplyBuffers) -> FUSEOutcome {
        let head = request.copyPrefix(FUSEProtocol.inHeaderSize)
        var reader = WireReader(head)
        guard let header = try? FUSERequestHeader(&reader) else {
            // Too short for a header: answer EINVAL to whatever unique the bytes carry.
            var partial = WireReader(head, from: 8)
            return send(unique: (try? partial.u64()) ?? 0, .failure(.invalid), to: reply)
        }
        let result: Result<Payload, FUSEErrno>
        do {
            result = .success(try dispatch(header, request, reply))
        } catch {
            result = .failure(error)
        }
        if header.opcode == FUSEOpcode.forget.rawValue || header.opcode == FUSEOpcode.batchForget.rawValue {
            return .noReply
        }
        if case .success(.none) = result { return .noReply }
        return send(unique: header.unique, result, to: reply)
    }

    /// Convenience for tests and byte-stream transports: one contiguous request, a reply array of
    /// at most `replyCapacity` bytes (nil when the operation takes no reply).
    public func handle(_ request: [UInt8], replyCapacity: Int = 1 << 21) -> [UInt8]? {
        var replyBytes = [UInt8](repeating: 0, count: replyCapacity)
        let outcome = request.withUnsafeBytes { input in
            replyBytes.withUnsafeMutableBytes { output in
                handle(FUSERequestBuffers([input]), reply: FUSEReplyBuffers([output]))
            }
        }
        switch outcome {
        case .replied(let count): return Array(replyBytes[..<count])
        case .noReply, .replyBufferTooSmall: return nil
        }
    }

    /// What an operation produced.
    enum Payload {
        case none
        case bytes([UInt8])
        /// This many payload bytes were already placed after the header (READ).
        case inPlace(Int)
    }

    private func send(unique: UInt64, _ result: Result<Payload, FUSEErrno>, to reply: FUSEReplyBuffers) -> FUSEOutcome {
        guard reply.capacity >= FUSEProtocol.outHeaderSize else { return .replyBufferTooSmall }
        var error: Int32 = 0
        var length = 0
        switch result {
        case .success(.bytes(let bytes)):
            if bytes.count <= reply.capacity - FUSEProtocol.outHeaderSize {
                reply.write(bytes, at: FUSEProtocol.outHeaderSize)
                length = bytes.count
            } else {
                error = -ERANGE
            }
        case .success(.inPlace(let count)): length = count
        case .success(.none): break
        case .failure(let errno): error = -errno.code
        }
        var out = WireWriter(capacity: FUSEProtocol.outHeaderSize)
        out.u32(UInt32(FUSEProtocol.outHeaderSize + length))
        out.i32(error)
        out.u64(unique)
        reply.write(out.bytes, at: 0)
        return .replied(FUSEProtocol.outHeaderSize + length)
    }

    private func dispatch(_ header: FUSERequestHeader, _ buffers: FUSERequestBuffers, _ reply: FUSEReplyBuffers)
        throws(FUSEErrno) -> Payload
    {
        guard Int(header.length) == buffers.count else { throw .invalid }
        let isWrite = header.opcode == FUSEOpcode.write.rawValue
        guard isWrite || buffers.count <= Self.maxRequestBytes else { throw .tooBig }
        let state = session.withLock { $0 }
        let setxattrExtended = false  // FUSE_SETXATTR_EXT is never negotiated
        var reader = WireReader(buffers.copyPrefix(isWrite ? Self.writeHeaderBytes : buffers.count),
                                from: FUSEProtocol.inHeaderSize)
        let request = try FUSERequest.parse(header, &reader, setxattrExtended: setxattrExtended)
        if case .initialize(let initIn) = request { return try initialize(initIn) }
        guard case .running = state else { throw .io }
        let operation = FUSEOperation(server: self, header: header)
        return try operation.run(request, buffers, reply)
    }

    private func initialize(_ request: InitIn) throws(FUSEErrno) -> Payload {
        guard request.major == FUSEProtocol.majorVersion, request.minor >= FUSEProtocol.oldestMinorVersion else {
            throw .protocolError
        }
        let minor = min(request.minor, FUSEProtocol.minorVersion)
        let wanted = FUSEProtocol.asyncRead | FUSEProtocol.atomicOTrunc | FUSEProtocol.bigWrites
            | FUSEProtocol.autoInvalData | FUSEProtocol.doReaddirplus | FUSEProtocol.readdirplusAuto
            | FUSEProtocol.asyncDIO | FUSEProtocol.parallelDirops | FUSEProtocol.maxPages
            | FUSEProtocol.cacheSymlinks
        let flags = request.flags & wanted
        let started = session.withLock { (state) -> Bool in
            guard state == .awaitingInit else { return false }
            state = .running(minor: minor, flags: flags)
            return true
        }
        guard started else { throw .io }
        var out = WireWriter(capacity: 64)
        out.u32(FUSEProtocol.majorVersion)
        out.u32(minor)
        out.u32(min(request.maxReadahead, configuration.maxReadahead))
        out.u32(UInt32(truncatingIfNeeded: flags))
        out.u16(64)  // max_background
        out.u16(48)  // congestion_threshold
        out.u32(configuration.maxWrite)
        out.u32(1)  // time_gran: nanoseconds
        out.u16(UInt16(configuration.maxWrite / FUSEProtocol.pageSize))  // max_pages
        out.u16(0)  // map_alignment: no DAX window
        out.u32(0)  // flags2
        out.zeros(28)
        return .bytes(out.bytes)
    }

    /// The transport's device was reset (the guest driver went away): the session ends as with
    /// DESTROY, and a new INIT may start over.
    public func resetSession() { destroy() }

    /// DESTROY: back to awaiting INIT, every inode and open file released.
    func destroy() {
        session.withLock { $0 = .awaitingInit }
        fileSystem.destroy()
    }
}
