// libFuzzer entry points for every parser a guest or peer feeds: one function per target, over
// the real modules. `kata-fuzz` drives them (docs/fuzzing.md); FuzzTests replays the corpus.

/// A fuzz target: a name, an entry point taking any bytes, and seed inputs.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// ttrpc frames into a server connection and a client connection (Sources/TTRPC).
    case ttrpc
    /// A guest-written split virtqueue: rings and descriptor chains (Sources/VirtIO).
    case virtqueue
    /// The vsock device: guest TX packets, RX buffers and host streams (Sources/Devices/Vsock).
    case vsock
    /// The read-only virtio-blk device: requests and their validation (Sources/Devices/Blk).
    case blk
    /// vhost-user messages from the frontend into a session over a vsock device (Sources/VhostUser).
    case vhostUser = "vhost-user"
    /// FUSE requests dispatched on a scratch share (Sources/FUSE).
    case fuse
    /// The runtime's configuration file (Sources/Runtime).
    case config
    /// Our VMM's virtio-balloon: free page reports of any ranges (Sources/Devices/Balloon).
    case balloon

    /// Runs one input. Any input must return normally: a trap is a bug in the code under test.
    public func run(_ input: [UInt8]) {
        switch self {
        case .ttrpc: TTRPCFuzz.run(input)
        case .virtqueue: VirtqueueFuzz.run(input)
        case .vsock: VsockFuzz.run(input)
        case .blk: BlkFuzz.run(input)
        case .vhostUser: VhostUserFuzz.run(input)
        case .fuse: FUSEFuzz.run(input)
        case .config: ConfigFuzz.run(input)
        case .balloon: BalloonFuzz.run(input)
        }
    }

    /// Valid inputs to start from, by name (written to the corpus by `kata-fuzz seed`).
    public var seeds: [(name: String, bytes: [UInt8])] {
        switch self {
        case .ttrpc: TTRPCFuzz.seeds
        case .virtqueue: VirtqueueFuzz.seeds
        case .vsock: VsockFuzz.seeds
        case .blk: BlkFuzz.seeds
        case .vhostUser: VhostUserFuzz.seeds
        case .fuse: FUSEFuzz.seeds
        case .config: ConfigFuzz.seeds
        case .balloon: BalloonFuzz.seeds
        }
    }

    /// Largest input worth generating (libFuzzer's -max_len).
    public var maxLength: Int {
        switch self {
        case .ttrpc, .fuse: 8192
        case .virtqueue: 4096 + 8
        case .vsock, .vhostUser, .blk: 4096
        case .config: 2048
        case .balloon: 1024
        }
    }
}
