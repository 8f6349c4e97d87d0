// The parts of an OCI runtime spec the shim itself reads. The whole document is kept as bytes
// for the sandbox, which hands it on to the guest agent.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An OCI `process` object (also what containerd's Exec sends, as JSON in an Any).
public struct OCIProcess: Codable, Equatable, Sendable {
    public var terminal: Bool?
    public var args: [String]?
    public var env: [String]?
    public var cwd: String?

    public init(terminal: Bool? = nil, args: [String]? = nil, env: [String]? = nil, cwd: String? = nil) {
        self.terminal = terminal
        self.args = args
        self.env = env
        self.cwd = cwd
    }

    /// Decodes an exec spec; malformed JSON is the caller's fault (InvalidArgument).
    public static func decode(json: [UInt8]) throws(TaskError) -> OCIProcess {
        do {
            return try JSONDecoder().decode(OCIProcess.self, from: Data(json))
        } catch {
            throw .invalidArgument("process spec is not valid JSON: \(error)")
        }
    }
}

/// The OCI runtime spec of a container (`<bundle>/config.json`).
public struct OCISpec: Sendable {
    public struct Root: Codable, Equatable, Sendable {
        public var path: String?
        public var readonly: Bool?
    }

    private struct Namespace: Codable {
        var type: String
        var path: String?
    }

    private struct Linux: Codable {
        var namespaces: [Namespace]?
    }

    private struct Document: Codable {
        var process: OCIProcess?
        var root: Root?
        var hostname: String?
        var annotations: [String: String]?
        var linux: Linux?
    }

    public var process: OCIProcess?
    public var root: Root?
    public var hostname: String?
    public var annotations: [String: String]
    /// The network namespace the container joins (`linux.namespaces`, type network, with a path):
    /// for a CRI pod, the one CNI set up.
    public var networkNamespacePath: String?
    /// The document as containerd wrote it.
    public var json: [UInt8]

    public init(json: [UInt8]) throws(BundleError) {
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(json))
        } catch {
            throw .badSpec(String(describing: error))
        }
        process = document.process
        root = document.root
        hostname = document.hostname
        annotations = document.annotations ?? [:]
        networkNamespacePath = document.linux?.namespaces?.first { $0.type == "network" }?.path.flatMap { $0.isEmpty ? nil : $0 }
        self.json = json
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
        let sandboxID = annotations[Self.sandboxIDAnnotation]
        switch annotations[Self.containerTypeAnnotation] {
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
