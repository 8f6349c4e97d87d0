// Several queues at once: lookups, reads and FORGETs racing on the same inodes and handles.

import Glibc
import Testing

@testable import FUSE

@Suite struct ConcurrencyTests {
    @Test func racingLookupsReadsAndForgetsLeaveNothingBehind() async throws {
        let share = try Share()
        let contents = String(repeating: "abcdefgh", count: 512)
        for index in 0..<4 { makeFile(share.path("f\(index)"), contents) }
        let server = share.server
        let failures = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    var failures = 0
                    for iteration in 0..<300 {
                        let unique = UInt64(worker * 1_000_000 + iteration * 10)
                        let name = "f\((worker + iteration) % 4)"
                        guard let found = server.handle(requestBytes(FUSEOpcode.lookup.rawValue, node: 1, unique: unique,
                                                                     args: Args().name(name).bytes)).map(Reply.init),
                            found.error == 0
                        else {
                            failures += 1
                            continue
                        }
                        let opened = server.handle(requestBytes(FUSEOpcode.open.rawValue, node: found.nodeID, unique: unique + 1,
                                                                args: Args().u32(UInt32(O_RDONLY)).u32(0).bytes)).map(Reply.init)
                        let fh = opened?.fh ?? 0
                        let read = server.handle(requestBytes(FUSEOpcode.read.rawValue, node: found.nodeID, unique: unique + 2,
                                                              args: Args().u64(fh).u64(8).u32(16).u32(0).u64(0).u32(0).u32(0).bytes))
                            .map(Reply.init)
                        if read?.error != 0 || read?.payload != Array("abcdefghabcdefgh".utf8) { failures += 1 }
                        _ = server.handle(requestBytes(FUSEOpcode.release.rawValue, node: found.nodeID, unique: unique + 3,
                                                       args: Args().u64(fh).u32(0).u32(0).u64(0).bytes))
                        let forget = server.handle(requestBytes(FUSEOpcode.forget.rawValue, node: found.nodeID,
                                                                unique: unique + 4, args: Args().u64(1).bytes))
                        if forget != nil { failures += 1 }
                    }
                    return failures
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
        #expect(share.fs.inodeCount == 0)
        #expect(share.fs.openFileCount == 0)
        #expect(share.descriptorsIntoShare() == 1)  // the root only
    }
}
