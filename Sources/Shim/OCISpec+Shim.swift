// What the shim reads of a container's OCI spec (the model is the OCI module's, shared with the
// runtime and the guest): the CRI role that picks the shim and the sandbox, and the pod's network
// namespace. Decoding errors become the shim's own: a bad config.json is a bundle error, a bad
// exec process the caller's (InvalidArgument).

import OCI

extension OCISpec {
    /// Decodes `<bundle>/config.json`.
    public init(json: [UInt8]) throws(BundleError) {
        do {
            self = try OCISpec.decode(json)
        } catch {
            throw .badSpec(error.description)
        }
    }

    /// The network namespace the container joins (`linux.namespaces`, type network, with a path):
    /// for a CRI pod, the one CNI set up.
    public var networkNamespacePath: String? {
        linux?.namespaces?.first { $0.type == "network" }?.joinPath
    }

    /// CRI's annotations: which pod a container belongs to, and whether it is the pod's sandbox.
    public enum CRIRole: Equatable, Sendable {
        /// No CRI annotations (`ctr run`): a pod of one.
        case single
        /// The pod sandbox (pause) container, whose id is the pod's id.
        case sandbox(id: String)
        /// A container joining the pod `sandboxID`.
        case container(sandboxID: String)
    }

    public static let containerTypeAnnotation = "io.kubernetes.cri.container-type"
    public static let sandboxIDAnnotation = "io.kubernetes.cri.sandbox-id"

    public var criRole: CRIRole {
        let sandboxID = annotations?[Self.sandboxIDAnnotation]
        switch annotations?[Self.containerTypeAnnotation] {
        case "container":
            if let sandboxID, !sandboxID.isEmpty { return .container(sandboxID: sandboxID) }
            return .single
        case "sandbox":
            if let sandboxID, !sandboxID.isEmpty { return .sandbox(id: sandboxID) }
            return .single
        default: return .single
        }
    }
}

extension OCIProcess {
    /// Decodes an exec's process spec; malformed JSON is the caller's fault (InvalidArgument).
    public static func decode(json: [UInt8]) throws(TaskError) -> OCIProcess {
        do {
            return try OCIProcess.decode(json)
        } catch {
            throw .invalidArgument("process spec is not valid: \(error)")
        }
    }
}
