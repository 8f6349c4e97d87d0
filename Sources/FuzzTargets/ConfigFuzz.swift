// The runtime's configuration file (TOML subset): read by the shim at start; host-written, but
// a malformed file must give an error naming the line, never a crash.
import Runtime

enum ConfigFuzz {
    static func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? TOMLSubset.parse(text)
        _ = try? RuntimeConfig.parse(text, file: "fuzz.toml")
    }

    static var seeds: [(name: String, bytes: [UInt8])] {
        let full = """
            # kata-swift configuration
            [hypervisor]
            backend = "qemu"
            kernel = "/usr/share/kata-swift/vmlinux"
            initrd = "/usr/share/kata-swift/initramfs-agent.cpio"
            vcpus = 2
            memory_mib = 512
            kernel_params = "quiet console=hvc0"
            debug_console = true
            qemu_path = "/usr/bin/qemu-system-x86_64"

            [agent]
            dial_timeout_s = 30
            log_level = "debug"

            [runtime]
            log_level = "info"
            sandbox_dir = "/run/kata-swift"

            """
        let odd = """
            [hypervisor]
            backend = 'kvm' # literal string
            vcpus = 0x10
            memory_mib = 1_024
            kernel_params = "a\\tb \\u00e9 \\"q\\""
            [agent]
            log_level = "loud"
            [unknown]
            x = [1, 2]

            """
        return [("full", Array(full.utf8)), ("odd", Array(odd.utf8)), ("empty", [])]
    }
}
