// The runtime's configuration file (TOML subset, Kata's schema and our old keys) and Kata's pod
// annotations: read by the shim at start; a malformed file must give an error naming the line,
// never a crash.
import Runtime

enum ConfigFuzz {
    static func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? TOMLSubset.parse(text)
        var warnings: [ConfigWarning] = []
        if let config = try? RuntimeConfig.parse(text, file: "fuzz.toml", warnings: &warnings) {
            // The same bytes as annotation values, against whatever the file enabled.
            var notes: [String] = []
            let names = ["default_vcpus", "default_memory", "kernel_params", "path"]
            let annotations = Dictionary(uniqueKeysWithValues: names.map { (KataAnnotations.hypervisorPrefix + $0, text) })
            _ = try? KataAnnotations.apply(annotations, to: config, warnings: &notes)
        }
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
        let kata = """
            [hypervisor.qemu]
            path = "/usr/bin/qemu-system-x86_64"
            kernel = "/usr/local/share/kata-swift/vmlinux"
            default_vcpus = -1
            default_memory = 2048
            enable_annotations = [
                "default_.*", # comment
                "kernel_params",
            ]
            valid_hypervisor_paths = ["/usr/bin/*"]
            machine_type = "q35"
            [agent.kata]
            dial_timeout = 45
            kernel_modules = []
            [runtime]
            internetworking_model = "tcfilter"
            experimental = ["a"]
            [factory]
            enable_template = true

            """
        return [("full", Array(full.utf8)), ("odd", Array(odd.utf8)), ("kata", Array(kata.utf8)), ("empty", [])]
    }
}
