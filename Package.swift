// swift-tools-version: 6.2
// kata-swift: secure containers for containerd, each pod in its own KVM microVM.
// Module map and layering: docs/ARCHITECTURE.md. Dependencies point down the list.

import PackageDescription

// The static FoundationEssentials archive, which `make release` names (static stdlib only). Given
// to the shim's link as an input, it comes before the libraries Swift autolinks; without it the
// linker resolves a generic specialization that libFoundation.a also defines from there, and full
// Foundation, CoreFoundation and ICU come along (docs/performance.md, "The shim's own pages").
let foundationEssentialsFirst = Context.environment["KATA_FOUNDATION_ESSENTIALS_ARCHIVE"].map { [$0] }?.filter { !$0.isEmpty } ?? []

let package = Package(
    name: "kata-swift",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "containerd-shim-kata-v2", targets: ["containerd-shim-kata-v2"]),
        .executable(name: "kata-ctl", targets: ["kata-ctl"]),
        .executable(name: "kata-agent", targets: ["kata-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
    ],
    targets: [
        // ---- C: what Swift cannot call or import itself, one target per concern; each header says why.
        // The OS layer's C half: epoll, eventfd, signals, posix_spawn, Unix sockets with descriptors,
        // the thread and process seccomp filters (libseccomp), terminals, getrandom.
        .target(name: "CSupport", linkerSettings: [.linkedLibrary("seccomp")]),
        // KVM ioctl numbers and the CPUID/MSR calls whose structs end in flexible arrays.
        .target(name: "CKVM"),
        // Networking: taps, netlink sockets, setns, the port-forward socket calls.
        .target(name: "CNet"),
        // Host-only calls: the QEMU guard process, shared guest-memory maps, the FUSE server's *at calls.
        .target(name: "CHost"),
        // Guest-only calls: PID-1 duties, the container clone-to-exec helper and its seccomp
        // filters (libseccomp), the reaper.
        .target(name: "CGuest", linkerSettings: [.linkedLibrary("seccomp")]),
        // The one OS layer: Errno and its text, owned descriptors, whole-file read and write-all,
        // WorkerThread (every thread starts there), mountinfo, epoll, eventfd, accept loop.
        // Light on purpose (CSupport only): even the FUSE server and the static agent's modules use it.
        .target(name: "SystemSupport", dependencies: ["CSupport"]),
        // The OCI runtime spec (v1.1, Linux), one Codable model for the shim, the runtime's
        // host-to-guest rewrite and the guest engine. Foundation(Essentials) only: the static agent uses it.
        .target(name: "OCI"),

        // ---- VMM stack
        // Guest physical address space; consumers depend on the GuestMemory protocol only.
        .target(name: "GuestMemory"),
        // /dev/kvm: Kvm, VM, Vcpu, VcpuExit.
        .target(name: "KVM", dependencies: ["CKVM", "SystemSupport"]),
        // vmlinux (PVH) and bzImage loaders, boot_params, e820, cmdline, page tables, GDT, MP table.
        .target(name: "Boot", dependencies: ["GuestMemory"]),
        // Split virtqueue, virtio device protocol, MMIO transport.
        .target(
            name: "VirtIO",
            dependencies: ["GuestMemory", "SystemSupport", .product(name: "Logging", package: "swift-log")]),
        // A fake virtio driver (like rust-vmm's MockSplitQueue) for tests of queues and devices.
        .target(name: "VirtIOTestSupport", dependencies: ["VirtIO", "GuestMemory"]),
        // Tests only: where the guest kernel and agent initramfs images come from.
        .target(name: "GuestImageTestSupport"),
        // FUSE server (the file-system half of virtio-fs): wire protocol + passthrough over a host
        // directory, confined to it. Takes plain byte buffers/iovecs, so any transport can drive it.
        .target(name: "FUSE", dependencies: ["CHost", "SystemSupport"]),
        // Device models: serial, i8042, boot timer, virtio vsock, rng and fs (over our FUSE server).
        .target(
            name: "Devices",
            dependencies: [
                "VirtIO", "GuestMemory", "SystemSupport", "CNet", "CSupport", "FUSE", .product(name: "Logging", package: "swift-log"),
            ]),
        // vhost-user backend: serves any of our device models to an external VMM (QEMU).
        .target(
            name: "VhostUser",
            dependencies: ["Devices", "VirtIO", "GuestMemory", "SystemSupport", "CHost", "CSupport", .product(name: "Logging", package: "swift-log")]),
        // Builds and runs a VM: memory, vCPU threads, devices, event loop, stop.
        .target(name: "VMM", dependencies: ["KVM", "Boot", "Devices", "VirtIO", "GuestMemory", "SystemSupport", "CKVM", "CSupport"]),
        // What this host's KVM runs, found with tiny guests built by the VMM: the CPU template and
        // kernel arguments for a Linux guest (host and CPUID probes), and whether a guest userspace runs.
        .target(name: "HostProbes", dependencies: ["VMM", "KVM", "Boot", "Devices"]),
        // The interface the sandbox uses to run its VM; backends: QEMU (+ our vhost-user server),
        // our in-process VMM; `auto` probing; host side of vsock (bridge, hybrid socket).
        .target(
            name: "Hypervisor",
            dependencies: [
                "VMM", "HostProbes", "KVM", "Boot", "VhostUser", "Devices", "FUSE", "VirtIO", "SystemSupport", "CHost", "CSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),

        // ---- wire protocols
        // ttrpc: framing, client, server, status codes, over any byte stream.
        .target(
            name: "TTRPC",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        // The agent API, generated from Protos/agent.proto (make protos); committed.
        .target(
            name: "AgentAPI",
            dependencies: ["TTRPC", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),

        // ---- networking
        // rtnetlink: links, addresses, routes, neighbours, ingress qdiscs and mirred redirects;
        // network namespaces entered on a thread of their own. Glibc only: the static agent uses it.
        .target(name: "Netlink", dependencies: ["CNet", "SystemSupport"]),
        // Kata's pod network model on the host: scan what CNI made in the pod's namespace, join a
        // veth and a tap with tc redirects, and express it as agent API requests.
        .target(
            name: "PodNetwork",
            dependencies: ["Netlink", "SystemSupport", "AgentAPI"]),

        // ---- guest side
        // OCI containers inside the guest: spec validation, clone/exec through ks_container.c,
        // cgroups, seccomp, state machine. Used by the agent; depends on CGuest, SystemSupport and OCI.
        .target(name: "GuestContainers", dependencies: ["CGuest", "SystemSupport", "OCI"]),

        // ---- containerd side
        // Generated from containerd 1.6's protos (make protos); committed.
        .target(
            name: "ContainerdAPI",
            dependencies: ["TTRPC", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // The shim: start/delete/daemon, task service, events, stdio, the sandbox interface.
        .target(
            name: "Shim",
            dependencies: [
                "ContainerdAPI", "TTRPC", "CSupport", "SystemSupport", "OCI",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // ---- guest
        // The guest agent: PID-1 duties (mounts, console, reaping, power off) and the agent services.
        .target(
            name: "Agent",
            dependencies: [
                "AgentAPI", "TTRPC", "CGuest", "CNet", "CSupport", "GuestContainers", "OCI", "SystemSupport", "Netlink",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),

        // Prometheus metrics over HTTP: the exposition served on a Unix or TCP socket, scraped over a
        // Unix socket, relabelled and merged (kata-ctl monitor); /proc/<pid> readings of a process.
        .target(
            name: "Monitoring",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),

        // The VM-backed sandbox behind the shim: configuration, VM boot through Hypervisor, the agent
        // over ttrpc/vsock, rootfs sharing, stdio pumps.
        .target(
            name: "Runtime",
            dependencies: [
                "Shim", "OCI", "Hypervisor", "AgentAPI", "TTRPC", "ContainerdAPI", "SystemSupport", "CNet", "Netlink",
                "PodNetwork", "Monitoring", "VirtIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),

        // ---- executables: thin mains
        // Release links with lld: relative relocations packed (DT_RELR, glibc 2.36) and only the symbols
        // the loader needs exported. The loader no longer pages in 2.3 MB of relocations and a dynamic
        // symbol table of every Swift symbol: an idle shim's PSS fell by 2.9 MiB (docs/performance.md,
        // "Host memory of one idle sandbox"). Still position independent, so still randomized (ASLR).
        .executableTarget(
            name: "containerd-shim-kata-v2", dependencies: ["Shim", "Runtime"],
            linkerSettings: [
                .unsafeFlags(
                    ["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic"]
                        + foundationEssentialsFirst,
                    .when(configuration: .release))
            ]),
        // TEST ONLY, never installed: the shim protocol over ScriptedSandbox (no VM), runtime
        // io.containerd.kata-scripted.v2, for ShimTests and ShimE2ETests where no VM can run.
        .executableTarget(name: "containerd-shim-kata-scripted-v2", dependencies: ["Shim", "OCI"]),
        // Throughput of the FUSE server's READ/WRITE and small-file paths vs plain host calls.
        .executableTarget(name: "fuse-bench", dependencies: ["FUSE"]),
        .executableTarget(
            name: "kata-ctl",
            dependencies: [
                "VMM", "HostProbes", "Hypervisor", "Runtime", "Shim", "Monitoring", "SystemSupport", "KVM", "Boot", "CSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Guest PID 1; built fully static for the initramfs by guest-image/build-agent-initramfs.sh.
        .executableTarget(name: "kata-agent", dependencies: ["Agent"]),
        // Fuzz entry points, one per guest- or peer-facing parser, over the real modules (docs/fuzzing.md).
        .target(
            name: "FuzzTargets",
            dependencies: [
                "TTRPC", "VirtIO", "VirtIOTestSupport", "GuestMemory", "Devices", "VhostUser", "FUSE", "Runtime", "SystemSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // Replays inputs through a target; the fuzz build (make fuzz) runs libFuzzer on it.
        .executableTarget(
            name: "kata-fuzz", dependencies: ["FuzzTargets", "SystemSupport", .product(name: "Logging", package: "swift-log")]),

        // ---- tests
        .testTarget(name: "GuestMemoryTests", dependencies: ["GuestMemory"]),
        .testTarget(name: "MonitoringTests", dependencies: ["Monitoring"]),
        // The OCI model: containerd's and CRI's config.json round-trip, decoding errors name the field.
        .testTarget(name: "OCITests", dependencies: ["OCI"], exclude: ["Fixtures"]),
        .testTarget(name: "VirtIOTests", dependencies: ["VirtIO", "VirtIOTestSupport", "GuestMemory"]),
        .testTarget(
            name: "DevicesTests",
            dependencies: [
                "Devices", "FUSE", "VirtIO", "VirtIOTestSupport", "GuestMemory", "SystemSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "SystemSupportTests", dependencies: ["SystemSupport", "CSupport"]),
        .testTarget(name: "KVMTests", dependencies: ["KVM", "CKVM", "SystemSupport"]),
        .testTarget(name: "BootTests", dependencies: ["Boot", "GuestMemory"]),
        .testTarget(
            name: "VMMTests",
            dependencies: ["VMM", "Devices", "KVM", "CKVM", "Boot", "GuestMemory", "VirtIO", "VirtIOTestSupport", "SystemSupport", "CSupport"]),
        // The host probes' tiny guests on this host's KVM, and their verdicts.
        .testTarget(name: "HostProbesTests", dependencies: ["HostProbes", "VMM", "Devices", "KVM"]),
        .testTarget(
            name: "VhostUserTests", dependencies: ["VhostUser", "Devices", "VirtIO", "VirtIOTestSupport", "GuestMemory"]),
        .testTarget(
            name: "TTRPCTests",
            dependencies: [
                "TTRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        .testTarget(
            name: "ContainerdAPITests",
            dependencies: [
                "ContainerdAPI", "TTRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        .testTarget(name: "FUSETests", dependencies: ["FUSE", "CHost"]),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "Agent", "AgentAPI", "OCI", "TTRPC", "CGuest", "CSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        // Shim unit tests, and the shim binary driven as containerd drives it (start/delete, ttrpc).
        .testTarget(
            name: "ShimTests",
            dependencies: ["Shim", "OCI", "ContainerdAPI", "TTRPC", "CSupport", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // The shim under a real containerd (own instance, ctr); needs root and containerd installed.
        .testTarget(name: "ShimE2ETests", dependencies: ["Shim", "Runtime", "SystemSupport"]),
        // Runtime: configuration parsing (unit), and VMSandbox against a real VM with our agent.
        .testTarget(
            name: "RuntimeTests",
            dependencies: [
                "Runtime", "Shim", "OCI", "Hypervisor", "AgentAPI", "ContainerdAPI", "CNet", "CSupport", "SystemSupport", "Monitoring", "Netlink",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "HypervisorTests", dependencies: ["Hypervisor", "Devices", "VirtIO", "SystemSupport", "CSupport"]),
        // One real boot of our kernel under our VMM (minutes on hosts whose KVM emulates the guest).
        .testTarget(name: "BootKernelTests", dependencies: ["VMM", "HostProbes", "Boot", "SystemSupport", "Devices", "VirtIO"]),
        .testTarget(name: "GuestContainersTests", dependencies: ["GuestContainers", "OCI"]),
        // Netlink codec (golden bytes, hostile replies) and, as root, the real thing in scratch
        // network namespaces: scan, tc redirect with traffic, the agent's interface and routes.
        .testTarget(
            name: "NetlinkTests",
            dependencies: [
                "Netlink", "PodNetwork", "Agent", "AgentAPI", "SystemSupport",
            ]),
        // Replays the fuzz corpus and every crash found (Tests/Fuzz) through each fuzz target.
        .testTarget(name: "FuzzTests", dependencies: ["FuzzTargets"]),
        // The agent's container API: in-process on this host (root), and in a QEMU/TCG guest.
        .testTarget(
            name: "AgentContainerTests",
            dependencies: [
                "Agent", "AgentAPI", "TTRPC", "GuestContainers", "OCI", "Hypervisor", "SystemSupport",
                "GuestImageTestSupport",
            ]),
        // The shim-to-agent channel end to end: our kernel and kata-agent in a VM, ttrpc over our vsock.
        .testTarget(
            name: "AgentChannelTests",
            dependencies: [
                "Hypervisor", "AgentAPI", "TTRPC", "SystemSupport", "CSupport", "GuestImageTestSupport",
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
    ]
)
