// The warm pool's directory and claim wire, without VMs: members counted by their locks, refills
// that never overshoot, dead members swept, a claim that hands over a listener, and claims that
// are refused without leaking a descriptor. WarmPoolE2ETests runs the real thing through containerd.

import CSupport
import Foundation
import Testing
@testable import Shim

@Suite struct WarmPoolTests {
    static func scratchPool(size: Int) -> WarmPool {
        WarmPool(directory: "/tmp/ks-warm-\(getpid())-\(UInt32.random(in: 0...UInt32.max))/pool", size: size)
    }

    /// How many of this process's descriptors refer to the same open file as `fd` (a pipe or a
    /// socket has a name of its own, `pipe:[inode]`). Counting every descriptor of the process
    /// would race with the tests running beside this one.
    static func descriptorsSharing(_ fd: Int32) -> Int {
        let fm = FileManager.default
        guard let target = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") else { return 0 }
        let all = (try? fm.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return all.filter { (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == target }.count
    }

    @Test func warmFlagsParse() throws {
        let flags = try ShimFlags(parsing: ["-namespace", "n", "-id", "warm-1", "-address", "/a", "-pool", "/p", "-config", "/c.toml", "warm"])
        #expect(flags.action == .warm && flags.pool == "/p" && flags.config == "/c.toml")
        try flags.validate()
        #expect(throws: ShimFlagsError.missingFlag("pool")) {
            try ShimFlags(parsing: ["-namespace", "n", "-id", "warm-1", "-address", "/a", "warm"]).validate()
        }
    }

    @Test func memberIDsAreValidContainerdIdentifiers() {
        let ids = (0..<50).map { _ in WarmPool.newMemberID() }
        #expect(ids.allSatisfy { Identifier.isValid($0) && $0.hasPrefix("warm-") && $0.count == 21 })
        #expect(Set(ids).count == ids.count)
    }

    @Test func refillSpawnsUpToTheSizeAndSweepsDeadMembers() throws {
        let pool = Self.scratchPool(size: 2)
        defer { try? FileManager.default.removeItem(atPath: pool.directory + "/..") }
        // The "shims": each keeps a duplicate of its lock, as a spawned warm shim does.
        var held: [String: Int32] = [:]
        let first = try pool.refill { id, lock in held[id] = dup(lock) }
        #expect(first.count == 2)
        #expect(pool.liveMembers() == first.sorted())
        // Full: a second refill spawns nothing.
        #expect(try pool.refill { _, _ in Issue.record("spawned into a full pool") }.isEmpty)
        // One member dies (its lock is released): it is swept and replaced.
        let dead = first[0]
        close(held.removeValue(forKey: dead)!)
        let second = try pool.refill { id, lock in held[id] = dup(lock) }
        #expect(second.count == 1 && second[0] != dead)
        #expect(!FileManager.default.fileExists(atPath: pool.lockPath(dead)))
        #expect(pool.liveMembers().count == 2)
        // A failed spawn leaves no entry behind.
        struct SpawnFailed: Error {}
        close(held.removeValue(forKey: second[0])!)
        #expect(throws: SpawnFailed.self) { try pool.refill { _, _ in throw SpawnFailed() } }
        #expect(pool.liveMembers() == [first[1]])
        // The last member leaves: the pool directory goes with it.
        close(held.removeValue(forKey: first[1])!)
        pool.leave(first[1])
        #expect(!FileManager.default.fileExists(atPath: pool.directory))
    }

    /// A member that takes one claim on its socket, the way WarmDaemon does; returns what it got.
    /// A thread of its own, as the member's blocking accept must not hold the test's pool threads.
    static func serveOneClaim(_ pool: WarmPool, id: String, answer: String) throws -> Task<(WarmClaim, Int32)?, Never> {
        try pool.create()
        let listener = ks_unix_listen(pool.socketPath(id), 8, 0, 1)
        try #require(listener >= 0)
        let (result, deliver) = AsyncStream<(WarmClaim, Int32)?>.makeStream()
        Thread {
            defer { close(listener) }
            let connection = ks_unix_accept(listener, 0)
            guard connection >= 0 else {
                deliver.yield(nil)
                return
            }
            defer { close(connection) }
            guard let (claim, fd) = try? WarmPool.receiveClaim(from: connection) else {
                deliver.yield(nil)
                return
            }
            WarmPool.answer(connection, answer)
            deliver.yield((claim, fd))
        }.start()
        return Task {
            for await value in result { return value }
            return nil
        }
    }

    @Test func aClaimHandsTheListenerToTheMember() async throws {
        let pool = Self.scratchPool(size: 1)
        defer { try? FileManager.default.removeItem(atPath: pool.directory + "/..") }
        let member = try Self.serveOneClaim(pool, id: "warm-a", answer: "ok")
        let podSocket = pool.directory + "/../pod.sock"
        let listener = ks_unix_listen(podSocket, 8, 0, 1)
        try #require(listener >= 0)
        defer { close(listener) }
        let claim = WarmClaim(id: "p1", namespace: "default", address: "/run/c.sock", publishBinary: "/bin/c", bundle: "/b",
                              debug: true, ttrpcAddress: "/run/c.sock.ttrpc")
        #expect(pool.claim(claim, listener: listener) == "warm-a")
        let (received, fd) = try #require(await member.value)
        #expect(received == claim)
        #expect(received.flags.id == "p1" && received.flags.debug)
        // The member's copy is the same socket: a client connects through it.
        #expect(ShimSocket.boundPath(of: fd) == podSocket)
        close(fd)
    }

    @Test func aRefusedClaimTriesTheNextMemberAndNoneIsNil() async throws {
        let pool = Self.scratchPool(size: 2)
        defer { try? FileManager.default.removeItem(atPath: pool.directory + "/..") }
        let refusing = try Self.serveOneClaim(pool, id: "warm-a", answer: "cannot take pod p1: busy")
        let taking = try Self.serveOneClaim(pool, id: "warm-b", answer: "ok")
        let listener = ks_unix_listen(pool.directory + "/../pod.sock", 8, 0, 1)
        try #require(listener >= 0)
        defer { close(listener) }
        let claim = WarmClaim(id: "p1", namespace: "n", address: "/a", publishBinary: "", bundle: "/b", debug: false, ttrpcAddress: "")
        var heard: [String] = []
        #expect(pool.claim(claim, listener: listener) { heard.append($0) } == "warm-b")
        #expect(heard == ["warm sandbox warm-a refused the pod: cannot take pod p1: busy"])
        if let (_, fd) = await refusing.value { close(fd) }
        if let (_, fd) = await taking.value { close(fd) }
        // No member left listening: nobody takes the next pod.
        unlink(pool.socketPath("warm-a"))
        unlink(pool.socketPath("warm-b"))
        #expect(pool.claim(claim, listener: listener) == nil)
    }

    @Test func malformedClaimsAreRefusedAndLeakNothing() throws {
        var pair: [Int32] = [-1, -1]
        // A pipe's read end rides along with a line that is not JSON: the receiver must close its copy.
        var pipeEnds: [Int32] = [-1, -1]
        try #require(pipe(&pipeEnds) == 0)
        close(pipeEnds[1])
        let passed = pipeEnds[0]
        defer { close(passed) }
        let cases: [(bytes: [UInt8], fds: [Int32], expected: String)] = [
            (Array("{\"id\":\"p\"}\n".utf8), [], "descriptors"),
            (Array("not json\n".utf8), [passed], "descriptor is not a listening"),
            (Array(repeating: UInt8(ascii: "x"), count: 70_000), [], "longer than"),
            (Array("{\"id\":\"../x\",\"namespace\":\"n\",\"address\":\"/a\",\"publishBinary\":\"\",\"bundle\":\"/b\",\"debug\":false,\"ttrpcAddress\":\"\"}\n".utf8),
             [], "descriptors"),
        ]
        for (bytes, fds, expected) in cases {
            try #require(ks_unix_socketpair(&pair) == 0)
            let writer = pair[1]
            let sent = DispatchSemaphore(value: 0)
            Thread {
                _ = bytes.withUnsafeBytes { ks_unix_send_with_fds(writer, $0.baseAddress, $0.count, fds, Int32(fds.count)) }
                ks_unix_shutdown(writer, 1)
                sent.signal()
            }.start()
            #expect {
                _ = try WarmPool.receiveClaim(from: pair[0])
            } throws: { error in
                "\(error)".contains(expected)
            }
            sent.wait()  // before the pair closes: its numbers are reused by the next case
            close(pair[0])
            close(pair[1])
        }
        // A valid line with a listener but a bad id is refused too, and its descriptor closed.
        let pool = Self.scratchPool(size: 1)
        try pool.create()
        defer { try? FileManager.default.removeItem(atPath: pool.directory + "/..") }
        let listener = ks_unix_listen(pool.directory + "/l.sock", 1, 0, 1)
        try #require(ks_unix_socketpair(&pair) == 0)
        let line = Array("{\"id\":\"../x\",\"namespace\":\"n\",\"address\":\"/a\",\"publishBinary\":\"\",\"bundle\":\"/b\",\"debug\":false,\"ttrpcAddress\":\"\"}\n".utf8)
        _ = line.withUnsafeBytes { ks_unix_send_with_fds(pair[1], $0.baseAddress, $0.count, [listener], 1) }
        #expect(throws: WarmClaimError.self) { _ = try WarmPool.receiveClaim(from: pair[0]) }
        close(pair[0])
        close(pair[1])
        #expect(Self.descriptorsSharing(listener) == 1, "the refused claim's listener was not closed")
        #expect(Self.descriptorsSharing(passed) == 1, "the passed pipe was not closed")
        close(listener)
    }
}
