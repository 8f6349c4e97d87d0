// The OCI runtime spec (v1.1, the Linux parts): one Codable model for the shim, the runtime's
// host-to-guest rewrite and the guest's container engine. It covers every field containerd (ctr)
// and its CRI plugin write, so their config.json decodes and encodes again without losing anything
// a runtime acts on.
//
// Decoding rules:
// - Unknown keys are ignored on decode, and so they are gone when the spec is encoded again (the
//   Windows, Solaris, VM and z/OS sections, and fields newer than v1.1). OCITests proves that
//   containerd's documents round-trip whole.
// - A field the spec marks REQUIRED is non-optional here where a runtime cannot act without it
//   (process.user and cwd, root.path, a mount's destination, a namespace's type, rlimits, id
//   mappings, devices, seccomp rules, hooks); a document without it does not decode, and the
//   error names the field. `ociVersion` stays optional: nothing acts on it.
// - Numbers have the Go types of runtime-spec's specs-go: limits that may be -1 (memory, swap,
//   cpu quota, pids) are Int64, counts and sizes that cannot be negative are UInt64/UInt32.
// - Encoding omits absent fields and sorts keys, without escaping '/'.
// What a runtime may or may not do with a value (absolute paths, known capabilities...) is checked
// by the module that acts on it, not here.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// config.json: the runtime spec of one container.
public struct OCISpec: Codable, Sendable, Equatable {
    public var ociVersion: String?
    public var process: OCIProcess?
    public var root: OCIRoot?
    public var hostname: String?
    public var domainname: String?
    public var mounts: [OCIMount]?
    public var hooks: OCIHooks?
    public var annotations: [String: String]?
    public var linux: OCILinux?

    public init(
        ociVersion: String? = nil, process: OCIProcess? = nil, root: OCIRoot? = nil, hostname: String? = nil,
        domainname: String? = nil, mounts: [OCIMount]? = nil, hooks: OCIHooks? = nil,
        annotations: [String: String]? = nil, linux: OCILinux? = nil
    ) {
        self.ociVersion = ociVersion
        self.process = process
        self.root = root
        self.hostname = hostname
        self.domainname = domainname
        self.mounts = mounts
        self.hooks = hooks
        self.annotations = annotations
        self.linux = linux
    }

    /// Decodes config.json.
    public static func decode(_ json: [UInt8]) throws(OCIDecodingError) -> OCISpec {
        try OCIJSON.decode(OCISpec.self, json)
    }

    /// config.json as the runtime hands it on.
    public func encoded() throws(OCIEncodingError) -> [UInt8] {
        try OCIJSON.encode(self)
    }
}

/// `root`: the container's root file system.
public struct OCIRoot: Codable, Sendable, Equatable {
    public var path: String
    public var readonly: Bool?

    public init(path: String, readonly: Bool? = nil) {
        self.path = path
        self.readonly = readonly
    }
}

/// One entry of `mounts`.
public struct OCIMount: Codable, Sendable, Equatable {
    public var destination: String
    public var type: String?
    public var source: String?
    public var options: [String]?
    public var uidMappings: [OCIIDMapping]?
    public var gidMappings: [OCIIDMapping]?

    public init(
        destination: String, type: String?, source: String?, options: [String]? = nil,
        uidMappings: [OCIIDMapping]? = nil, gidMappings: [OCIIDMapping]? = nil
    ) {
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
        self.uidMappings = uidMappings
        self.gidMappings = gidMappings
    }

    /// A bind mount: type "bind", or the bind/rbind option (containerd writes both forms).
    public var isBind: Bool {
        type == "bind" || options?.contains("bind") == true || options?.contains("rbind") == true
    }
}

/// `hooks`: programs the runtime runs around the container's lifecycle.
public struct OCIHooks: Codable, Sendable, Equatable {
    public var prestart: [OCIHook]?
    public var createRuntime: [OCIHook]?
    public var createContainer: [OCIHook]?
    public var startContainer: [OCIHook]?
    public var poststart: [OCIHook]?
    public var poststop: [OCIHook]?

    public init(
        prestart: [OCIHook]? = nil, createRuntime: [OCIHook]? = nil, createContainer: [OCIHook]? = nil,
        startContainer: [OCIHook]? = nil, poststart: [OCIHook]? = nil, poststop: [OCIHook]? = nil
    ) {
        self.prestart = prestart
        self.createRuntime = createRuntime
        self.createContainer = createContainer
        self.startContainer = startContainer
        self.poststart = poststart
        self.poststop = poststop
    }
}

public struct OCIHook: Codable, Sendable, Equatable {
    public var path: String
    public var args: [String]?
    public var env: [String]?
    /// Seconds.
    public var timeout: Int?

    public init(path: String, args: [String]? = nil, env: [String]? = nil, timeout: Int? = nil) {
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout
    }
}

/// An id mapping of a user namespace or an id-mapped mount.
public struct OCIIDMapping: Codable, Sendable, Equatable {
    public var containerID: UInt32
    public var hostID: UInt32
    public var size: UInt32

    public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
        self.containerID = containerID
        self.hostID = hostID
        self.size = size
    }
}
