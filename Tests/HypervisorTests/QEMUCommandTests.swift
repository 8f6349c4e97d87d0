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
        #expect(append == "console=ttyS0 reboot=t panic=-1 tsc_early_khz=2445406 quiet KS_DIAL=5000")
        #expect(args.suffix(2) == ["-initrd", "/k/initrd"])
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
