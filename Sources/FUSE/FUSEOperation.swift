// One decoded request run against the file system, its result encoded as a reply payload.

import Glibc

struct FUSEOperation {
    let server: FUSEServer
    let header: FUSERequestHeader

    var fs: PassthroughFileSystem { server.fileSystem }
    var node: UInt64 { header.nodeID }
    var caller: FUSECaller { FUSECaller(uid: header.uid, gid: header.gid, pid: header.pid) }
    var timeouts: FUSECacheTimeouts { fs.configuration.timeouts }

    func run(_ request: FUSERequest, _ buffers: FUSERequestBuffers, _ reply: FUSEReplyBuffers)
        throws(FUSEErrno) -> FUSEServer.Payload
    {
        if fs.configuration.readOnly, request.modifiesFileSystem { throw .readOnly }
        switch request {
        case .initialize: throw .io  // handled by the server before a session exists
        case .destroy:
            server.destroy()
            return .bytes([])  // the kernel waits for this reply at unmount
        case .lookup(let name): return entry(try fs.lookup(parent: node, name: name))
        case .forget(let lookups):
            fs.forget(node, lookups: lookups)
            return .none
        case .batchForget(let entries):
            for entry in entries { fs.forget(entry.nodeID, lookups: entry.lookups) }
            return .none
        case .getattr(let fh): return attr(try fs.getattr(node, fh: fh))
        case .setattr(let request): return attr(try fs.setattr(node, request))
        case .readlink: return .bytes(try fs.readlink(node))
        case .symlink(let name, let target):
            return entry(try fs.symlink(parent: node, name: name, target: target, caller: caller))
        case .mknod(let name, let mode, let rdev):
            return entry(try fs.mknod(parent: node, name: name, mode: mode, rdev: rdev, caller: caller))
        case .mkdir(let name, let mode):
            return entry(try fs.mkdir(parent: node, name: name, mode: mode | UInt32(S_IFDIR), caller: caller))
        case .unlink(let name):
            try fs.unlink(parent: node, name: name)
            return .bytes([])
        case .rmdir(let name):
            try fs.rmdir(parent: node, name: name)
            return .bytes([])
        case .rename(let newParent, let from, let to, let flags):
            try fs.rename(parent: node, name: from, newParent: newParent, newName: to, flags: flags)
            return .bytes([])
        case .link(let target, let name): return entry(try fs.link(target, parent: node, name: name))
        case .open(let flags): return open(try fs.open(node, flags: flags))
        case .opendir: return open(try fs.opendir(node))
        case .create(let name, let flags, let mode):
            let created = try fs.create(parent: node, name: name, flags: flags, mode: mode, caller: caller)
            var out = WireWriter(capacity: 144)
            out.entry(nodeID: created.nodeID, created.attr, timeouts: timeouts)
            out.openOut(fh: created.fh)
            return .bytes(out.bytes)
        case .read(let fh, let offset, let size):
            let room = reply.capacity - FUSEProtocol.outHeaderSize
            let count = min(Int(size), Int(server.configuration.maxWrite), room)
            guard let target = reply.iovecs(from: FUSEProtocol.outHeaderSize, count: max(count, 0)) else {
                throw .invalid
            }
            return .inPlace(try fs.read(fh, offset: offset, into: target))
        case .write(let fh, let offset, let size, let dataOffset):
            guard size <= server.configuration.maxWrite, Int(size) == buffers.count - dataOffset,
                let source = buffers.iovecs(from: dataOffset, count: Int(size))
            else { throw .invalid }
            let written = try fs.write(fh, offset: offset, from: source)
            var out = WireWriter(capacity: 8)
            out.u32(UInt32(written))
            out.u32(0)
            return .bytes(out.bytes)
        case .release(let fh), .releasedir(let fh):
            fs.release(fh)
            return .bytes([])
        case .flush(let fh):
            try fs.flush(fh)
            return .bytes([])
        case .fsync(let fh, let dataOnly), .fsyncdir(let fh, let dataOnly):
            try fs.fsync(fh, dataOnly: dataOnly)
            return .bytes([])
        case .readdir(let fh, let offset, let size, let plus):
            let room = reply.capacity - FUSEProtocol.outHeaderSize
            let limit = min(Int(size), room, Int(server.configuration.maxWrite))
            return .bytes(try fs.readdir(fh, directory: node, offset: offset, size: limit, plus: plus))
        case .statfs:
            var out = WireWriter(capacity: 80)
            out.statfs(try fs.statfs(node))
            return .bytes(out.bytes)
        case .setxattr(let name, let value, let flags):
            try fs.setxattr(node, name: name, value: value, flags: flags)
            return .bytes([])
        case .getxattr(let name, let size): return xattr(try fs.getxattr(node, name: name, size: size))
        case .listxattr(let size): return xattr(try fs.listxattr(node, size: size))
        case .removexattr(let name):
            try fs.removexattr(node, name: name)
            return .bytes([])
        case .access(let mask):
            try fs.access(node, mask: mask, caller: caller)
            return .bytes([])
        case .fallocate(let fh, let offset, let length, let mode):
            try fs.fallocate(fh, offset: offset, length: length, mode: mode)
            return .bytes([])
        case .lseek(let fh, let offset, let whence):
            var out = WireWriter(capacity: 8)
            out.u64(try fs.lseek(fh, offset: offset, whence: whence))
            return .bytes(out.bytes)
        case .unsupported: throw .notImplemented
        }
    }

    private func entry(_ result: (nodeID: UInt64, attr: stat)) -> FUSEServer.Payload {
        var out = WireWriter(capacity: 128)
        out.entry(nodeID: result.nodeID, result.attr, timeouts: timeouts)
        return .bytes(out.bytes)
    }

    private func attr(_ st: stat) -> FUSEServer.Payload {
        var out = WireWriter(capacity: 104)
        out.attrOut(st, timeouts: timeouts)
        return .bytes(out.bytes)
    }

    private func open(_ fh: UInt64) -> FUSEServer.Payload {
        var out = WireWriter(capacity: 16)
        out.openOut(fh: fh)
        return .bytes(out.bytes)
    }

    private func xattr(_ result: XattrReply) -> FUSEServer.Payload {
        switch result {
        case .size(let size):
            var out = WireWriter(capacity: 8)
            out.u32(UInt32(size))
            out.u32(0)
            return .bytes(out.bytes)
        case .data(let bytes): return .bytes(bytes)
        }
    }
}

extension FUSERequest {
    /// Whether the request changes the share (refused with EROFS on a read-only share).
    var modifiesFileSystem: Bool {
        switch self {
        case .setattr, .symlink, .mknod, .mkdir, .unlink, .rmdir, .rename, .link, .create, .write, .setxattr,
            .removexattr, .fallocate:
            true
        case .open(let flags):
            flags & UInt32(O_ACCMODE) != UInt32(O_RDONLY) || flags & UInt32(O_TRUNC) != 0
        case .access(let mask):
            mask & UInt32(W_OK) != 0
        default:
            false
        }
    }
}
