// The warm pool (docs/warm-sandboxes.md): sandboxes booted to agent ready before any pod asks,
// one shim process each (the `warm` action, WarmDaemon), waiting for `start` to hand them a pod.
// One pool directory per containerd and configuration:
//   <pool>/pool.lock   flock'ed by `start` while it counts the members and spawns new ones
//   <pool>/<id>.lock   flock'ed by warm shim <id> for its whole life (`start` creates it locked and
//                      hands the descriptor over), so a member is counted from its spawn on and a
//                      dead one is known by a lock anybody can take
//   <pool>/<id>.sock   its claim socket, there once the guest's agent answers
//   <pool>/<id>.log    its log until a pod adopts it (from then on the bundle's log FIFO)
// A claim is one message on a claim socket: the pod's identity as one line of JSON (WarmClaim)
// with the pod's listening task socket as an SCM_RIGHTS descriptor. The answer is "ok\n" or a
// line saying why not. A warm shim takes one claim, removes its entries, and answers "ok" only
// once it serves the pod on that listener.

import CSupport
import SystemSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Who a claimed warm shim becomes: what containerd told `start`.
public struct WarmClaim: Codable, Equatable, Sendable {
    public var id: String
    public var namespace: String
    public var address: String
    public var publishBinary: String
    public var bundle: String
    public var debug: Bool
    /// containerd's ttrpc address for events (`start`'s TTRPC_ADDRESS).
    public var ttrpcAddress: String

    public init(id: String, namespace: String, address: String, publishBinary: String, bundle: String, debug: Bool,
                ttrpcAddress: String) {
        self.id = id
        self.namespace = namespace
        self.address = address
        self.publishBinary = publishBinary
        self.bundle = bundle
        self.debug = debug
        self.ttrpcAddress = ttrpcAddress
    }

    /// The daemon's flags for the claimed pod.
    public var flags: ShimFlags {
        var flags = ShimFlags()
        flags.id = id
        flags.namespace = namespace
        flags.address = address
        flags.publishBinary = publishBinary
        flags.bundle = bundle
        flags.debug = debug
        return flags
    }
}

/// Why a claim message was refused.
public enum WarmClaimError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case io(Errno)

    public var description: String {
        switch self {
        case .malformed(let why): "malformed claim: \(why)"
        case .io(let errno): "claim socket: \(errno)"
        }
    }
}

/// One pool directory and how many warm sandboxes it should hold.
public struct WarmPool: Sendable, Equatable {
    public var directory: String
    public var size: Int

    /// The longest claim message accepted (a claim is a few hundred bytes).
    static let maxClaimBytes = 64 << 10
    /// How long either side waits on the other during a claim.
    static let claimTimeoutSeconds = 10

    public init(directory: String, size: Int) {
        self.directory = directory
        self.size = size
    }

    public func lockPath(_ id: String) -> String { directory + "/\(id).lock" }
    public func socketPath(_ id: String) -> String { directory + "/\(id).sock" }
    public func logPath(_ id: String) -> String { directory + "/\(id).log" }
    var poolLockPath: String { directory + "/pool.lock" }

    /// A new member's id: `warm-` and 16 random hex digits (a valid containerd identifier).
    public static func newMemberID() -> String {
        var generator = SystemRandomNumberGenerator()
        return "warm-" + String(generator.next() as UInt64, radix: 16).leftPadded(to: 16)
    }

    /// Creates the directory and its parents (mode 0700).
    public func create() throws(Errno) {
        var current = ""
        for component in directory.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o700) != 0 && errno != EEXIST { throw Errno.current }
        }
    }

    /// Removes member `id`'s entries (its socket, log and lock).
    public func removeEntries(of id: String) {
        unlink(socketPath(id))
        unlink(logPath(id))
        unlink(lockPath(id))
    }

    /// Member `id` leaves the pool for good (its shim is ending unclaimed): its entries go, and
    /// the pool directory too once no member and no `start` uses it.
    public func leave(_ id: String) {
        removeEntries(of: id)
        let poolLock = open(poolLockPath, O_RDWR | O_CLOEXEC)
        guard poolLock >= 0 else { return }
        defer { close(poolLock) }
        guard flock(poolLock, LOCK_EX | LOCK_NB) == 0,
              let names = try? FileManager.default.contentsOfDirectory(atPath: directory), names == ["pool.lock"]
        else { return }
        unlink(poolLockPath)
        rmdir(directory)
        rmdir(String(directory[..<(directory.lastIndex(of: "/") ?? directory.endIndex)]))  // the pools' parent, if empty
    }

    /// The ids of the members whose shim is alive (booting or ready), sorted; the entries of dead
    /// members are removed on the way.
    public func liveMembers() -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var live: [String] = []
        for name in names.sorted() where name.hasSuffix(".lock") && name != "pool.lock" {
            let id = String(name.dropLast(".lock".count))
            let fd = open(lockPath(id), O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                removeEntries(of: id)  // nobody holds it: the shim is gone
            } else {
                live.append(id)
            }
            close(fd)
        }
        return live
    }

    /// Spawns members until `size` are alive, under the pool lock so concurrent `start`s do not
    /// overshoot. `spawn` gets the new id and its lock file, open and locked; it must hand the
    /// descriptor to the new shim (the caller's copy is closed afterwards). Returns the new ids.
    public func refill(spawn: (_ id: String, _ lock: Int32) throws -> Void) throws -> [String] {
        try create()
        let poolLock = open(poolLockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard poolLock >= 0 else { throw Errno.current }
        defer { close(poolLock) }
        guard flock(poolLock, LOCK_EX) == 0 else { throw Errno.current }
        var spawned: [String] = []
        let live = liveMembers().count
        for _ in 0..<max(size - live, 0) {
            let id = Self.newMemberID()
            let lock = open(lockPath(id), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard lock >= 0 else { throw Errno.current }
            defer { close(lock) }
            guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
                unlink(lockPath(id))
                throw Errno.current
            }
            do {
                try spawn(id, lock)
            } catch {
                unlink(lockPath(id))
                throw error
            }
            spawned.append(id)
        }
        return spawned
    }

    // MARK: the claim, `start`'s side

    /// Offers the pod to each ready member in turn, handing over `listener` (the pod's task
    /// socket); returns the id of the member that now serves it, or nil when none took it.
    /// `log` hears why a member refused.
    public func claim(_ claim: WarmClaim, listener: Int32, log: (String) -> Void = { _ in }) -> String? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        guard var message = try? JSONEncoder().encode(claim) else { return nil }
        message.append(UInt8(ascii: "\n"))
        for name in names.sorted() where name.hasPrefix("warm-") && name.hasSuffix(".sock") {
            let id = String(name.dropSuffix(".sock"))
            let fd = ks_unix_connect(socketPath(id))
            guard fd >= 0 else { continue }  // taken a moment ago, or its shim just ended
            defer { close(fd) }
            Self.setTimeouts(fd)
            let sent = message.withUnsafeBytes { ks_unix_send_with_fds(fd, $0.baseAddress, $0.count, [listener], 1) }
            guard sent == message.count else { continue }
            let answer = Self.readLine(fd)
            if answer == "ok" { return id }
            if let answer, !answer.isEmpty { log("warm sandbox \(id) refused the pod: \(answer)") }
        }
        return nil
    }

    // MARK: the claim, the warm shim's side

    /// Reads one claim from `connection`: the JSON line and exactly one descriptor, a listening
    /// Unix socket. Throws, closing any descriptor received, for anything else.
    public static func receiveClaim(from connection: Int32) throws(WarmClaimError) -> (WarmClaim, Int32) {
        setTimeouts(connection)
        var bytes: [UInt8] = []
        var received: [Int32] = []
        var accepted = false
        defer { if !accepted { received.forEach { close($0) } } }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var fds = [Int32](repeating: -1, count: 4)
        while !bytes.contains(UInt8(ascii: "\n")) {
            var count: Int32 = 0
            let n = buffer.withUnsafeMutableBytes { ks_unix_recv_with_fds(connection, $0.baseAddress, $0.count, &fds, 4, &count) }
            received += fds.prefix(Int(count))
            if n < 0 { throw .io(Errno(Int32(-n))) }
            if n == 0 { throw .malformed("the peer closed before a whole line") }
            bytes += buffer.prefix(n)
            if bytes.count > maxClaimBytes { throw .malformed("longer than \(maxClaimBytes) bytes") }
        }
        guard received.count == 1 else { throw .malformed("\(received.count) descriptors, expected the pod's listener") }
        guard isListeningStreamSocket(received[0]) else { throw .malformed("the descriptor is not a listening stream socket") }
        let line = bytes.prefix { $0 != UInt8(ascii: "\n") }
        guard let claim = try? JSONDecoder().decode(WarmClaim.self, from: Data(line)) else {
            throw .malformed("not a claim in JSON")
        }
        guard Identifier.isValid(claim.id) else { throw .malformed(Identifier.problem("id", claim.id)) }
        guard !claim.namespace.isEmpty, !claim.address.isEmpty else { throw .malformed("no namespace or address") }
        accepted = true
        return (claim, received[0])
    }

    static func isListeningStreamSocket(_ fd: Int32) -> Bool {
        var type: Int32 = 0
        var accepting: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_STREAM.rawValue) else { return false }
        length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0 && accepting == 1
    }

    /// Answers a claim: "ok", or why not (one line).
    public static func answer(_ connection: Int32, _ text: String) {
        let line = Array((text.replacing("\n", with: " ") + "\n").utf8)
        _ = line.withUnsafeBytes { ks_unix_send(connection, $0.baseAddress, $0.count) }
    }

    static func setTimeouts(_ fd: Int32) {
        var timeout = timeval(tv_sec: claimTimeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// One line (without its newline) of at most 4 KiB, or nil at end of stream or on a timeout.
    static func readLine(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count < 4096 {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { return nil }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return nil
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }

    fileprivate func dropSuffix(_ suffix: String) -> Substring {
        hasSuffix(suffix) ? dropLast(suffix.count) : self[...]
    }
}
