// swift-tools-version: 6.2
// kata-swift: secure containers for containerd, each pod in its own KVM microVM.
// Module map and layering: docs/ARCHITECTURE.md. Dependencies point down the list.

import PackageDescription

let package = Package(
    name: "kata-swift",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "containerd-shim-kata-v2", targets: ["containerd-shim-kata-v2"]),
        .executable(name: "kata-ctl", targets: ["kata-ctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
    ],
    targets: [
        // C: ioctl request numbers, fixed-argument wrappers for variadic calls, headers Swift cannot import.
        .target(name: "CShims"),
        // Errno, owned descriptors, epoll, eventfd, signals.
        .target(name: "SystemSupport", dependencies: ["CShims"]),

        // ---- VMM stack
        // Guest physical address space; consumers depend on the GuestMemory protocol only.
        .target(name: "GuestMemory"),
        // /dev/kvm: Kvm, VM, Vcpu, VcpuExit.
        .target(name: "KVM", dependencies: ["CShims", "SystemSupport"]),
        // vmlinux (PVH) and bzImage loaders, boot_params, e820, cmdline, page tables, GDT, MP table.
        .target(name: "Boot", dependencies: ["GuestMemory"]),
        // Split virtqueue, virtio device protocol, MMIO transport.
        .target(name: "VirtIO", dependencies: ["GuestMemory"]),
        // Device models: serial, i8042, boot timer, virtio vsock and rng.
        .target(name: "Devices", dependencies: ["VirtIO", "GuestMemory", "SystemSupport"]),
        // Builds and runs a VM: memory, vCPU threads, devices, event loop, stop.
        .target(name: "VMM", dependencies: ["KVM", "Boot", "Devices", "GuestMemory", "SystemSupport"]),

        // ---- containerd side
        // ttrpc: framing, client, server, status codes, over any byte stream.
        .target(
            name: "TTRPC",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        // Generated from containerd 1.6's protos (make protos); committed.
        .target(
            name: "ContainerdAPI",
            dependencies: ["TTRPC", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // The shim: start/delete/daemon, task service, events, stdio, the sandbox interface.
        .target(
            name: "Shim",
            dependencies: [
                "ContainerdAPI", "TTRPC", "CShims", "SystemSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // ---- executables: thin mains
        .executableTarget(name: "containerd-shim-kata-v2", dependencies: ["Shim"]),
        .executableTarget(
            name: "kata-ctl",
            dependencies: ["VMM", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // ---- tests
        .testTarget(name: "GuestMemoryTests", dependencies: ["GuestMemory"]),
        .testTarget(name: "SystemSupportTests", dependencies: ["SystemSupport"]),
        .testTarget(name: "KVMTests", dependencies: ["KVM", "SystemSupport", "CShims"]),
        .testTarget(name: "BootTests", dependencies: ["Boot", "GuestMemory"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "Devices", "KVM", "Boot", "GuestMemory"]),
        // One real boot of our kernel under our VMM (minutes on hosts whose KVM emulates the guest).
        .testTarget(name: "BootKernelTests", dependencies: ["VMM", "Boot", "SystemSupport"]),
    ]
)
