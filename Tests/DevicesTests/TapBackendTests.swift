import Devices
import Foundation
import GuestMemory
import SystemSupport
import Testing
import VirtIO

#if canImport(Glibc)
import Glibc
#endif

/// A real tap, created in a fresh network namespace (as root): the guest ARPs for the
/// namespace's address through the device, the kernel answers through the tap, and the answer
/// lands in the guest's RX buffers. Traffic never leaves the namespace.
@Suite(.serialized, .enabled(if: geteuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0, "needs root and /dev/net/tun"))
struct TapBackendTests {
    static let guestIP: [UInt8] = [10, 199, 0, 2]
    static let hostIP: [UInt8] = [10, 199, 0, 1]

    @discardableResult
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = arguments
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs `body` with a fresh network namespace, deleted afterwards.
    static func withNamespace(_ body: (String) throws -> Void) throws {
        let name = "ks-net-test-\(getpid())"
        _ = try run(["netns", "del", name])
        let created = try run(["netns", "add", name])
        try #require(created.status == 0, "ip netns add: \(created.output)")
        defer { _ = try? run(["netns", "del", name]) }
        try body(name)
    }

    static func arpRequest(from mac: [UInt8]) -> [UInt8] {
        var frame = [UInt8](repeating: 0xff, count: 6) + mac + [0x08, 0x06]
        frame += [0, 1, 8, 0, 6, 4, 0, 1] + mac + guestIP + [0, 0, 0, 0, 0, 0] + hostIP
        return frame + [UInt8](repeating: 0, count: 60 - frame.count)
    }

    @Test func tapLivesInTheNamespaceAndCarriesFramesBothWays() throws {
        try Self.withNamespace { ns in
            let tap = try TapBackend(name: "kstap%d", netnsPath: "/var/run/netns/\(ns)")
            #expect(tap.name.hasPrefix("kstap"))
            #expect(try Self.run(["-n", ns, "link", "show", tap.name]).status == 0)
            #expect(try Self.run(["link", "show", tap.name]).status != 0, "not in the host's namespace")
            try #require(try Self.run(["-n", ns, "addr", "add", "10.199.0.1/24", "dev", tap.name]).status == 0)
            try #require(try Self.run(["-n", ns, "link", "set", tap.name, "up"]).status == 0)

            let guest = try NetTestGuest(backend: tap)
            let buffers = try (0..<8).map { _ in try guest.rx.add([.writable(2048)]) }
            try guest.send(Self.arpRequest(from: NetTestGuest.mac))
            #expect(guest.device.txFrames == 1)

            // The kernel's ARP reply comes out of the tap (IPv6 chatter may come first).
            var reply: [UInt8]?
            let deadline = ContinuousClock.now + .seconds(3)
            var seen = 0
            while reply == nil, ContinuousClock.now < deadline {
                var fd = pollfd(fd: tap.readinessDescriptor.rawValue, events: Int16(POLLIN), revents: 0)
                _ = poll(&fd, 1, 100)
                guest.device.processBackend()
                for used in try guest.rx.takeUsed() {
                    let chain = try #require(buffers.first { UInt32($0.head) == used.head })
                    let bytes = try guest.rx.written(chain, count: Int(used.length))
                    seen += 1
                    // Ethertype ARP, opcode 2 (reply).
                    if bytes.count >= 12 + 42, bytes[24] == 0x08, bytes[25] == 0x06, bytes[33] == 2 { reply = bytes }
                }
            }
            let arp = try #require(reply, "no ARP reply among \(seen) frames")
            #expect(VirtioNetHeader(bytes: arp)?.numBuffers == 1)
            #expect(Array(arp[12..<18]) == NetTestGuest.mac, "addressed to the guest")
            #expect(Array(arp[40..<44]) == Self.hostIP, "sender is the namespace's address")
            let stats = try Self.run(["-n", ns, "-s", "link", "show", tap.name])
            #expect(stats.status == 0)
        }
    }

    @Test func offloadsFollowTheGuestsFeatures() throws {
        try Self.withNamespace { ns in
            let tap = try TapBackend(name: "kstap%d", netnsPath: "/var/run/netns/\(ns)")
            try tap.setOffloads([.csum, .tso4, .tso6, .tsoECN])
            try tap.setOffloads([])
            #expect(throws: Errno.self) { try tap.setOffloads([.tso4]) }
        }
    }

    @Test func missingNamespaceIsAnError() {
        #expect(throws: Errno(rawValue: ENOENT)) { try TapBackend(name: "kstap%d", netnsPath: "/var/run/netns/ks-no-such-ns") }
    }
}
