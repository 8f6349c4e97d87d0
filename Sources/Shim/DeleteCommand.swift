// `containerd-shim-kata-v2 ... -bundle B delete`: containerd 1.6 runs this after EVERY shim
// disconnect (normal task delete included) and after crashes, with a 5 s timeout. It must be fast and
// idempotent: take the rootfs mounts off `<bundle>/rootfs`, remove the socket of a shim that is gone,
// never touch a live shim (other containers of the pod), and print only a DeleteResponse.

#if canImport(Glibc)
import Glibc
#endif

/// The `delete` action.
public struct DeleteCommand {
    public var flags: ShimFlags
    public var bundle: BundleDirectory
    public var socketDirectory: String

    public init(flags: ShimFlags, bundle: BundleDirectory, socketDirectory: String = ShimSocket.defaultDirectory) {
        self.flags = flags
        self.bundle = bundle
        self.socketDirectory = socketDirectory
    }

    /// What was cleaned up.
    public struct Outcome: Equatable, Sendable {
        public var removedSocket: String?
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
        var info = stat()
        guard stat(socket.path, &info) == 0, !socket.canConnect() else { return Outcome(removedSocket: nil) }
        socket.remove()
        return Outcome(removedSocket: socket.path)
    }
}
