// Our encoders and decoders against the kernel's own header (linux/fuse.h via CHost).

import CHost
import Glibc
import Testing

@testable import FUSE

@Suite struct LayoutTests {
    let abi = ks_fuse_abi

    @Test func replyPayloadsHaveTheKernelsSizes() throws {
        var st = stat()
        st.st_mode = Glibc.S_IFREG | 0o644
        st.st_rdev = dev_t(decodeDevice((8 << 8) | 1))
        var entry = WireWriter()
        entry.entry(nodeID: 5, st, timeouts: FUSECacheTimeouts())
        #expect(entry.bytes.count == Int(abi.entry_out))
        // mode and rdev where the kernel reads them
        let mode = Int(abi.entry_out_attr + abi.attr_mode)
        #expect(Array(entry.bytes[mode..<mode + 4]) == [0xa4, 0x81, 0, 0])
        let rdev = Int(abi.entry_out_attr + abi.attr_rdev)
        #expect(Array(entry.bytes[rdev..<rdev + 4]) == [1, 8, 0, 0])
        var attr = WireWriter()
        attr.attrOut(st, timeouts: FUSECacheTimeouts())
        #expect(attr.bytes.count == Int(abi.attr_out))
        var open = WireWriter()
        open.openOut(fh: 1)
        #expect(open.bytes.count == Int(abi.open_out))
        var statfs = WireWriter()
        statfs.statfs(statvfs())
        #expect(statfs.bytes.count == Int(abi.statfs_out))
        #expect(DirentSize.dirent == Int(abi.dirent))
        #expect(DirentSize.direntplus == Int(abi.direntplus))
        #expect(FUSEProtocol.inHeaderSize == Int(abi.in_header))
        #expect(FUSEProtocol.outHeaderSize == Int(abi.out_header))
    }

    @Test func serverRepliesHaveTheKernelsSizes() throws {
        let share = try Share(initialize: false)
        let initReply = share.call(.initialize, args: Args().u32(7).u32(36).u32(4096).u32(0).raw(
            [UInt8](repeating: 0, count: Int(abi.init_in) - 16)))
        #expect(initReply.payload.count == Int(abi.init_out))
        #expect(initReply.u32(Int(abi.init_out_max_write)) == 1 << 20)
        #expect(initReply.u32(Int(abi.init_out_flags2)) == 0)
        let created = share.create("f")
        #expect(created.payload.count == Int(abi.entry_out + abi.open_out))
        let fh = created.u64(Int(abi.entry_out))
        #expect(share.write(created.nodeID, fh: fh, offset: 0, data: [1, 2]).payload.count == Int(abi.write_out))
        let getattr = share.call(.getattr, node: created.nodeID, args: Args().raw([UInt8](repeating: 0, count: Int(abi.getattr_in))))
        #expect(getattr.payload.count == Int(abi.attr_out))
        let size = share.call(.listxattr, node: created.nodeID, args: Args().raw([UInt8](repeating: 0, count: Int(abi.getxattr_in))))
        #expect(size.error == 0 && size.payload.count == Int(abi.getxattr_out))
        let seek = share.call(.lseek, node: created.nodeID, args: Args().u64(fh).u64(0).u32(UInt32(SEEK_END)).u32(0))
        #expect(seek.payload.count == Int(abi.lseek_out) && seek.u64(0) == 2)
        #expect(share.call(.statfs).payload.count == Int(abi.statfs_out))
    }

    @Test func requestArgumentSizesMatchTheKernels() throws {
        // Each request built with exactly the kernel's struct size is accepted (not EINVAL), one
        // byte less or more is refused: our parser and the header agree on every layout.
        let share = try Share()
        let created = share.create("f")
        let node = created.nodeID
        let fixed: [(FUSEOpcode, UInt32)] = [
            (.getattr, abi.getattr_in), (.setattr, abi.setattr_in), (.open, abi.open_in), (.read, abi.read_in),
            (.release, abi.release_in), (.flush, abi.flush_in), (.fsync, abi.fsync_in), (.access, abi.access_in),
            (.fallocate, abi.fallocate_in), (.lseek, abi.lseek_in), (.listxattr, abi.getxattr_in),
        ]
        for (opcode, size) in fixed {
            let exact = share.call(opcode, node: node, args: Args().raw([UInt8](repeating: 0, count: Int(size))))
            #expect(exact.error != .fuse(EINVAL), "\(opcode) exact")
            #expect(share.call(opcode, node: node, args: Args().raw([UInt8](repeating: 0, count: Int(size) - 1))).error
                == .fuse(EINVAL), "\(opcode) short")
            #expect(share.call(opcode, node: node, args: Args().raw([UInt8](repeating: 0, count: Int(size) + 1))).error
                == .fuse(EINVAL), "\(opcode) long")
        }
        let named: [(FUSEOpcode, UInt32)] = [
            (.create, abi.create_in), (.mknod, abi.mknod_in), (.mkdir, abi.mkdir_in), (.rename2, abi.rename2_in),
            (.link, abi.link_in), (.getxattr, abi.getxattr_in), (.setxattr, abi.setxattr_in_compat),
        ]
        for (opcode, size) in named {
            var args = Args().raw([UInt8](repeating: 0, count: Int(size) - 1))
            args = args.name("x")
            // One byte short: the name's first byte becomes the struct's last, leaving an empty name.
            #expect(share.call(opcode, node: node, args: args).error == .fuse(EINVAL), "\(opcode) short")
        }
        #expect(abi.write_in == 40 && abi.batch_forget_in == 8 && abi.forget_one == 16)
        #expect(abi.setattr_in_mode == 68 && abi.setattr_in_uid == 76 && abi.kstatfs_namelen == 44)
        #expect(abi.init_out_max_pages == 28)
    }
}
