import Foundation
import Testing

@testable import Hypervisor

#if canImport(Glibc)
import Glibc
#endif

/// Network interfaces on both backends: a tap in the given namespace for the VM's life. In-process,
/// the guest cannot run userspace on our CI hosts' KVM; under QEMU the guest's virtio_net driver
/// starts our device over vhost-user. The device's frames are tested in DevicesTests and VMMTests.
@Suite(.serialized, .enabled(if: geteuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0, "needs root and /dev/net/tun"))
struct NetworkInterfaceTests {
    static func ip(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test(.timeLimit(.minutes(3)))
    func theVMsTapLivesInTheNamespaceWhileItRuns() async throws {
        let ns = "ks-hv-net-\(getpid())"
        _ = try Self.ip(["netns", "del", ns])
        try #require(try Self.ip(["netns", "add", ns]) == 0)
        defer { _ = try? Self.ip(["netns", "del", ns]) }
        var config = try GuestFixture.config(name: "kvm-net")
        config.backend = .kvm
        config.networkInterfaces = [
            NetworkInterface(tapName: "kstap0", netnsPath: "/var/run/netns/\(ns)", mac: [2, 0, 0, 0, 0, 5], mtu: 1500)
        ]
        let vm = KVMHypervisor(config: config)
        try await vm.start()
        #expect(try Self.ip(["-n", ns, "link", "show", "kstap0"]) == 0)
        #expect(try Self.ip(["link", "show", "kstap0"]) != 0, "not in the host's namespace")
        await vm.stop()
        #expect(await vm.waitForExit() == .stopped(exitCode: 0, requested: true))
        #expect(try Self.ip(["-n", ns, "link", "show", "kstap0"]) != 0, "the tap went with the VM")
    }

    @Test func badInterfacesAreRefused() async throws {
        var config = try GuestFixture.config(name: "kvm-net-bad")
        config.backend = .kvm
        config.networkInterfaces = [NetworkInterface(tapName: "kstap0", mac: [2, 0, 0], mtu: 1500)]
        do {
            try await KVMHypervisor(config: config).start()
            Issue.record("a 3-byte MAC was accepted")
        } catch {
            guard case .invalidConfig(let what) = error else { throw error }
            #expect(what.contains("MAC"))
        }
        config.networkInterfaces = [NetworkInterface(tapName: "kstap0", mac: [2, 0, 0, 0, 0, 5], mtu: 60)]
        await #expect(throws: HypervisorError.self) { try await KVMHypervisor(config: config).start() }
    }

    @Test(.timeLimit(.minutes(3)))
    func qemuServesTheInterfaceOverVhostUser() async throws {
        let ns = "ks-hv-qnet-\(getpid())"
        _ = try Self.ip(["netns", "del", ns])
        try #require(try Self.ip(["netns", "add", ns]) == 0)
        defer { _ = try? Self.ip(["netns", "del", ns]) }
        var config = try GuestFixture.config(name: "qemu-net")
        config.networkInterfaces = [
            NetworkInterface(tapName: "kstap0", netnsPath: "/var/run/netns/\(ns)", mac: [2, 0, 0, 0, 0, 6], mtu: 1500)
        ]
        let vm = QEMUHypervisor(config: config)
        try await vm.start()
        #expect(try Self.ip(["-n", ns, "link", "show", "kstap0"]) == 0)
        // The guest kernel's virtio_net probe sets DRIVER_OK; QEMU then starts our rings.
        var active = false
        for _ in 0..<300 where !active {
            active = vm.networkDevicesActive == [true]
            if !active { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(active, "the guest's virtio-net driver never started the device")
        await vm.stop()
        _ = await vm.waitForExit()
        #expect(try Self.ip(["-n", ns, "link", "show", "kstap0"]) != 0, "the tap went with the VM")
    }

    /// Our kernel and an initramfs whose /init is guest-image/init/net-check.c.
    static let netCheckInitrd: Result<String, GuestFixture.FixtureError> = {
        let work = "/tmp/kata-swift-net-fixture-\(getpid())"
        let root = GuestFixture.repoRoot
        let script = """
            set -e
            mkdir -p \(work)
            gcc -static -O2 -o \(work)/net-check \(root)/guest-image/init/net-check.c
            \(root)/guest-image/build-initramfs.sh \(work)/net.cpio \(work)/net-check >/dev/null 2>&1
            echo \(work)/net.cpio
            """
        guard let path = GuestFixture.shell(script)?.split(separator: "\n").last.map(String.init), access(path, R_OK) == 0 else {
            return .failure(GuestFixture.FixtureError(description: "could not build the net-check initramfs"))
        }
        return .success(path)
    }()

    @Test(.timeLimit(.minutes(3)))
    func guestTrafficRoundTripsThroughTheTapUnderQEMU() async throws {
        try await trafficRoundTrip(name: "qemu-gnet", mac: 7) { QEMUHypervisor(config: $0) }
    }

    /// The same round trip through our VMM's virtio-net on virtio-mmio. It needs a KVM that runs a
    /// guest's userspace, so it runs on the nested KVM host (scripts/nested-tests.sh, which
    /// NestedKVMTests runs in make test, sets KATA_REQUIRE_KVM=1).
    @Test(.timeLimit(.minutes(5)), .enabled(
        if: ProcessInfo.processInfo.environment["KATA_REQUIRE_KVM"] == "1",
        "runs inside the nested KVM host (NestedKVMTests): this host's KVM runs no guest userspace"))
    func guestTrafficRoundTripsThroughTheTapOnOurVMM() async throws {
        try await trafficRoundTrip(name: "kvm-gnet", mac: 8) { config in
            var config = config
            config.backend = .kvm
            return KVMHypervisor(config: config)
        }
    }

    /// Boots guest-image/init/net-check.c with one NIC on a tap at 10.199.1.1/24 in a scratch
    /// namespace: the guest's ARP and UDP/ICMP round trip must print "net: ok".
    func trafficRoundTrip(name: String, mac: UInt8, _ make: (HypervisorConfig) -> any Hypervisor) async throws {
        let ns = "ks-hv-gnet-\(getpid())"
        _ = try Self.ip(["netns", "del", ns])
        try #require(try Self.ip(["netns", "add", ns]) == 0)
        defer { _ = try? Self.ip(["netns", "del", ns]) }
        var config = try GuestFixture.config(name: name)
        config.initrdPath = try Self.netCheckInitrd.get()
        config.networkInterfaces = [
            NetworkInterface(tapName: "kstap0", netnsPath: "/var/run/netns/\(ns)", mac: [2, 0, 0, 0, 0, mac], mtu: 1500)
        ]
        let vm = make(config)
        try await vm.start()
        #expect(try Self.ip(["-n", ns, "addr", "add", "10.199.1.1/24", "dev", "kstap0"]) == 0)
        #expect(try Self.ip(["-n", ns, "link", "set", "kstap0", "up"]) == 0)
        let t0 = ContinuousClock.now
        let exited = Task { await vm.waitForExit() }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(120))
            await vm.stop(graceSeconds: 0)
        }
        let final = await exited.value
        watchdog.cancel()
        let lines = vm.consoleTail.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("net: ") }
        print("BENCH net-check (\(vm.kind)): guest finished \(ContinuousClock.now - t0) after start(): \(lines)")
        #expect(final == .stopped(exitCode: 0, requested: false), "console:\n\(vm.consoleTail)")
        #expect(lines == ["net: ok"], "console:\n\(vm.consoleTail)")
    }
}
