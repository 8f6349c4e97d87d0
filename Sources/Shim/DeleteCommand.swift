// `containerd-shim-kata-v2 ... -bundle B delete`: containerd 1.6 runs this after EVERY shim
// disconnect (normal task delete included) and after crashes, with a 5 s timeout. It must be fast and
// idempotent: take the rootfs mounts off `<bundle>/rootfs`, remove the socket of a shim that is gone
// and what that shim left of its sandbox (a SIGKILLed shim never ran its Shutdown: the share's
// mounts and the sandbox directory stay, its VM died with it), never touch a live shim (other
// containers of the pod), and print only a DeleteResponse.

#if canImport(Glibc)
import Glibc
#endif

/// Removes what a dead shim left of the sandbox `sandboxID` (the executable supplies it: the
/// Runtime module knows where sandboxes live). Returns a line for the log, or nil if nothing was there.
public typealias SandboxCleanup = @Sendable (_ sandboxID: String, _ environment: [String: String]) -> String?

/// The `delete` action.
public struct DeleteCommand {
    public var flags: ShimFlags
    public var bundle: BundleDirectory
    public var socketDirectory: String
    public var cleanUpSandbox: SandboxCleanup?
    public var environment: [String: String]

    public init(flags: ShimFlags, bundle: BundleDirectory, socketDirectory: String = ShimSocket.defaultDirectory,
                environment: [String: String] = [:], cleanUpSandbox: SandboxCleanup? = nil) {
        self.flags = flags
        self.bundle = bundle
        self.socketDirectory = socketDirectory
        self.environment = environment
        self.cleanUpSandbox = cleanUpSandbox
    }

    /// What was cleaned up.
    public struct Outcome: Equatable, Sendable {
        public var removedSocket: String?
        /// What the sandbox cleanup removed, if anything.
        public var cleanedSandbox: String?
    }

    public func run() throws -> Outcome {
        try RootfsMounts.unmountAll(bundle.rootfsPath)
        // Only the shim that owns a socket (the task itself, or the pod's sandbox) may remove it, and
        // only when nothing answers there any more.
        var group = flags.id
        if let spec = try? bundle.readSpec() {
            switch spec.criRole {
            case .container: return Outcome(removedSocket: nil)
            case .sandbox(let id): group = id
            case .single: break
            }
        }
        guard !flags.address.isEmpty else { return Outcome(removedSocket: nil) }
        let socket = ShimSocket(containerdAddress: flags.address, namespace: flags.namespace, groupID: group,
                                directory: socketDirectory)
        guard !socket.canConnect() else { return Outcome(removedSocket: nil) }
        // Nobody serves the group: its shim is gone, and so is its VM.
        let cleaned = cleanUpSandbox?(group, environment)
        var info = stat()
        guard stat(socket.path, &info) == 0 else { return Outcome(removedSocket: nil, cleanedSandbox: cleaned) }
        socket.remove()
        return Outcome(removedSocket: socket.path, cleanedSandbox: cleaned)
    }
}
