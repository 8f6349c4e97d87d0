import Testing

@testable import Hypervisor

@Suite struct QEMUCommandTests {
    @Test func commandLineSharesMemoryAndServesVsockOverVhostUser() {
        let config = HypervisorConfig(
            kernelPath: "/k/vmlinux", initrdPath: "/k/initrd", cmdlineExtras: ["KS_DIAL=5000"], vcpus: 2, memoryMiB: 128,
            runtimeDirectory: "/run/x")
        let command = QEMUCommand(config: config, accelerator: .tcg, vhostVsockSocket: "/run/x/v.sock", qmpSocket: "/run/x/q.sock", tscKHz: 2_445_406)
        let args = command.arguments
        #expect(args.first == "/usr/bin/qemu-system-x86_64")
        #expect(args.contains("memory-backend-memfd,id=mem,size=128M,share=on"))
        #expect(args.contains("microvm,acpi=off,memory-backend=mem"))
        #expect(args.contains("socket,id=vsock0,path=/run/x/v.sock"))
        #expect(args.contains("vhost-user-vsock-device,chardev=vsock0"))
        #expect(args.contains("-no-reboot"))
        let append = args.firstIndex(of: "-append").map { args[$0 + 1] }
        #expect(append == "console=ttyS0 reboot=t panic=-1 random.trust_cpu=on tsc_early_khz=2445406 noapictimer no_timer_check noreplace-smp quiet KS_DIAL=5000")
        #expect(args.suffix(2) == ["-initrd", "/k/initrd"])
    }

    @Test func anImageIsTheRootDiskAndReplacesTheInitrd() {
        let config = HypervisorConfig(
            kernelPath: "/k/vmlinux", initrdPath: "/k/initrd", imagePath: "/k/a,b.img", reclaimFreedMemory: true,
            runtimeDirectory: "/run/x")
        let args = QEMUCommand(
            config: config, accelerator: .tcg, vhostVsockSocket: "/v", diskSocket: "/run/x/vhost-blk.sock", qmpSocket: "/q", tscKHz: nil
        ).arguments
        #expect(args.contains("socket,id=blk0,path=/run/x/vhost-blk.sock"))
        #expect(args.contains("vhost-user-blk,chardev=blk0"))
        #expect(!args.contains("-initrd"))
        let append = args.firstIndex(of: "-append").map { args[$0 + 1] } ?? ""
        #expect(append.hasPrefix("console=ttyS0 reboot=t panic=-1 random.trust_cpu=on root=/dev/vda ro rootfstype=ext4 init=/init"))
        #expect(args.contains("virtio-balloon-device,free-page-reporting=on"))
        #expect(args.contains("tcg,tb-size=16"))
        #expect(args.contains("rng-random,filename=/dev/urandom,id=rng0") && args.contains("virtio-rng-device,rng=rng0"))
        // Without them: the initrd, no disk, no balloon; KVM has no translation buffer.
        let plain = QEMUCommand(
            config: HypervisorConfig(kernelPath: "/k/vmlinux", initrdPath: "/k/initrd", runtimeDirectory: "/run/x"),
            accelerator: .kvm, vhostVsockSocket: "/v", qmpSocket: "/q", tscKHz: nil
        ).arguments
        #expect(plain.suffix(2) == ["-initrd", "/k/initrd"])
        #expect(!plain.contains("vhost-user-blk,chardev=blk0") && !plain.contains { $0.hasPrefix("virtio-balloon") })
        var noRng = HypervisorConfig(kernelPath: "/k/vmlinux", runtimeDirectory: "/run/x")
        noRng.qemuEntropySource = nil
        #expect(!QEMUCommand(config: noRng, accelerator: .tcg, vhostVsockSocket: "/v", qmpSocket: "/q", tscKHz: nil)
            .arguments.contains("virtio-rng-device,rng=rng0"))
        #expect(plain.contains("kvm"))
        // A KVM guest has a TSC-deadline timer and skips the timer check by itself.
        let plainAppend = plain.firstIndex(of: "-append").map { plain[$0 + 1] } ?? ""
        #expect(!plainAppend.contains("noapictimer") && !plainAppend.contains("tsc_early_khz"))
    }

    @Test func sandboxIsOnByDefaultAndRunasSwitchesUser() throws {
        let config = HypervisorConfig(kernelPath: "/k/vmlinux", runtimeDirectory: "/run/x")
        let root = QEMUCommand(config: config, accelerator: .tcg, vhostVsockSocket: "/run/x/v.sock", qmpSocket: "/run/x/q.sock", tscKHz: nil)
        let sandbox = root.arguments.firstIndex(of: "-sandbox").map { root.arguments[$0 + 1] }
        #expect(sandbox == "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")
        #expect(!root.arguments.contains("-runas"))
        let user = QEMUCommand(
            config: config, accelerator: .tcg, vhostVsockSocket: "/run/x/v.sock", qmpSocket: "/run/x/q.sock", tscKHz: nil,
            runAs: QEMUUser(uid: 999, gid: 995))
        let runas = user.arguments.firstIndex(of: "-runas").map { user.arguments[$0 + 1] }
        #expect(runas == "999:995")
        // QEMU's own -runas calls setgid/setuid under its filter, before the guest runs.
        #expect(user.arguments.contains("on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny"))
        var off = config
        off.qemuSandbox = false
        let unfiltered = QEMUCommand(config: off, accelerator: .tcg, vhostVsockSocket: "/run/x/v.sock", qmpSocket: "/run/x/q.sock", tscKHz: nil)
        #expect(!unfiltered.arguments.contains("-sandbox"))
    }

    @Test func qemuUserResolvesNamesAndNumbersButNeverRoot() throws {
        #expect(try QEMUUser.resolve("1234:5678") == QEMUUser(uid: 1234, gid: 5678))
        #expect(try QEMUUser.resolve("nobody").uid == 65534)
        #expect(throws: HypervisorError.self) { try QEMUUser.resolve("root") }
        #expect(throws: HypervisorError.self) { try QEMUUser.resolve("0:0") }
        #expect(throws: HypervisorError.self) { try QEMUUser.resolve("no-such-user-kata-swift") }
    }

    @Test func eachShareIsAVhostUserFsDeviceWithItsTag() {
        let config = HypervisorConfig(kernelPath: "/k/vmlinux", runtimeDirectory: "/run/x")
        let command = QEMUCommand(
            config: config, accelerator: .tcg, vhostVsockSocket: "/run/x/v.sock",
            virtioFs: [.init(tag: "kataShared", socket: "/run/x/fs0.sock"), .init(tag: "a,b", socket: "/run/x/fs1.sock")],
            qmpSocket: "/run/x/q.sock", tscKHz: nil)
        let args = command.arguments
        #expect(args.contains("socket,id=fs0,path=/run/x/fs0.sock"))
        #expect(args.contains("vhost-user-fs-device,chardev=fs0,tag=kataShared,queue-size=1024"))
        #expect(args.contains("vhost-user-fs-device,chardev=fs1,tag=a,,b,queue-size=1024"))
        #expect(args.firstIndex(of: "vhost-user-fs-device,chardev=fs0,tag=kataShared,queue-size=1024")! < args.firstIndex(of: "-kernel")!)
    }

    @Test func tscRateComesFromCpuinfo() {
        #expect(QEMUCommand.tscKHz(cpuinfo: "processor\t: 0\ncpu MHz\t\t: 2445.406\n") == 2_445_406)
        #expect(QEMUCommand.tscKHz(cpuinfo: "processor\t: 0\n") == nil)
        #expect(QEMUCommand.tscKHz(cpuinfo: "cpu MHz\t: garbage\n") == nil)
    }
}
