// What a template's key names (docs/snapshots.md, "Templates"): everything that shapes the saved
// VM, and nothing that is each clone's own.
import Foundation
import Hypervisor
import Logging
import Netlink
import Testing
@testable import Runtime

@Suite struct VMTemplateTests {
    static func config(_ interfaces: [NetworkInterface] = [], memoryMiB: Int = 128) -> HypervisorConfig {
        var config = HypervisorConfig(kernelPath: "/dev/null", memoryMiB: memoryMiB, runtimeDirectory: "/run/unused")
        config.networkInterfaces = interfaces
        return config
    }

    @Test func aNICCountsByNumberAndMTUNotByTapOrMAC() {
        let key = { (interfaces: [NetworkInterface]) in VMTemplate(for: Self.config(interfaces), directory: "/unused").key }
        let warm = NetworkInterface(tapName: "tap0_kata", netnsPath: "/run/a/netns", mac: [2, 0, 0, 0, 0, 1], mtu: 1500)
        let pod = NetworkInterface(tapName: "tap0_kata", netnsPath: "/var/run/netns/cni-1", mac: [2, 9, 9, 9, 9, 9], mtu: 1500)
        #expect(key([warm]) == key([pod]), "a clone's tap and MAC are its own")
        #expect(key([warm]) != key([]))
        #expect(key([warm]) != key([NetworkInterface(tapName: "tap0_kata", mac: [2, 0, 0, 0, 0, 1], mtu: 1450)]))
        #expect(key([warm]) != key([warm, pod]))
        #expect(VMTemplate(for: Self.config(memoryMiB: 128), directory: "/unused").key != VMTemplate(for: Self.config(memoryMiB: 256), directory: "/unused").key)
        #expect(key([]).count == 16 && key([]).allSatisfy(\.isHexDigit))
    }
}

extension VMTemplateTests {
    /// A template whose kernel was rebuilt can never be restored again: the next template made
    /// removes it, and keeps the ones that still match their files or whose maker is at work.
    @Test func aTemplateWhoseFilesChangedIsSweptByTheNextOneMade() throws {
        let directory = "/tmp/ks-template-sweep-\(getpid())"
        mkdir(directory, 0o700)
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }
        let kernel = directory + "/vmlinux"
        let other = directory + "/other-vmlinux"
        for file in [kernel, other] { #expect(FileManager.default.createFile(atPath: file, contents: Data([1]))) }
        func template(_ kernelPath: String, memoryMiB: Int = 128) -> VMTemplate {
            var config = Self.config(memoryMiB: memoryMiB)
            config.kernelPath = kernelPath
            return VMTemplate(for: config, directory: directory)
        }
        func place(_ t: VMTemplate, inputs: Bool = true) {
            FileManager.default.createFile(atPath: t.path, contents: Data("saved".utf8))
            FileManager.default.createFile(atPath: t.lockPath, contents: nil)
            if inputs { FileManager.default.createFile(atPath: t.inputsPath, contents: Data(t.inputs.joined(separator: "\n").utf8)) }
        }
        let rebuilt = template(kernel)
        let current = template(other)
        let busy = template(kernel, memoryMiB: 256)
        let older = template(other, memoryMiB: 512)
        place(rebuilt)
        place(current)
        place(busy)
        place(older, inputs: false)  // made by a shim that wrote no inputs
        #expect(VMTemplate.isStale(inputs: rebuilt.inputs.joined(separator: "\n")) == nil)

        // The kernel is rebuilt: another identity, another key.
        #expect(unlink(kernel) == 0 && FileManager.default.createFile(atPath: kernel, contents: Data([1, 2])))
        let next = template(kernel)
        #expect(next.key != rebuilt.key)
        #expect(VMTemplate.isStale(inputs: rebuilt.inputs.joined(separator: "\n")) == "kernel \(kernel) changed")
        let maker = open(busy.lockPath, O_RDWR | O_CLOEXEC)
        #expect(maker >= 0 && flock(maker, LOCK_EX) == 0)
        defer { close(maker) }
        place(next)
        next.sweep(logger: Logger(label: "test"))

        let left = Set((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        for gone in [rebuilt.path, rebuilt.inputsPath, rebuilt.lockPath, older.path] {
            #expect(!left.contains(String(gone.split(separator: "/").last!)), "\(gone) was kept")
        }
        for kept in [current.path, current.inputsPath, busy.path, next.path, next.inputsPath] {
            #expect(left.contains(String(kept.split(separator: "/").last!)), "\(kept) was removed")
        }
    }
}

extension VMTemplateTests {
    /// A maker killed mid-way leaves its NICs' namespace pinned and its directories; the next
    /// maker of that key clears them under the lock. One that fails (here: no kernel to boot)
    /// leaves nothing either: no template, no inputs, no namespace, no directory.
    @Test(.enabled(if: getuid() == 0, "network namespaces need root"))
    func aMakerClearsWhatAKilledOneLeftAndLeavesNothingWhenItFails() async throws {
        let directory = "/tmp/ks-template-make-\(getpid())"
        mkdir(directory, 0o700)
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }
        var config = Self.config([NetworkInterface(tapName: "tap0_kata", mac: [2, 0, 0, 0, 0, 1], mtu: 1500)])
        config.sharedDirectories = [SharedDirectory(tag: "kataShared", hostPath: "/unused")]
        let template = VMTemplate(for: config, directory: directory)
        mkdir(template.workDirectory, 0o700)
        mkdir(template.workDirectory + "/vm", 0o700)
        #expect(FileManager.default.createFile(atPath: template.workDirectory + "/vm/console.sock", contents: nil))
        try NetworkNamespace.create(at: template.workDirectory + "/netns")

        await template.make(from: config, agentTimeoutSeconds: 1, logger: Logger(label: "test"))

        #expect(!template.exists && access(template.inputsPath, F_OK) != 0 && access(template.path + ".tmp", F_OK) != 0)
        #expect(access(template.workDirectory, F_OK) != 0, "the maker's directory is left")
        let mounts = ((try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(!mounts.contains { $0.contains(directory) }, "a namespace is still pinned: \(mounts.filter { $0.contains(directory) })")
    }
}
