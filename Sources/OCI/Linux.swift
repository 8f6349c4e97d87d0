// `linux`: namespaces, id mappings, devices, cgroup, seccomp and the rest of the Linux section.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public struct OCILinux: Codable, Sendable, Equatable {
    public var namespaces: [OCINamespace]?
    public var uidMappings: [OCIIDMapping]?
    public var gidMappings: [OCIIDMapping]?
    /// Keyed by clock ("monotonic", "boottime").
    public var timeOffsets: [String: OCITimeOffset]?
    public var devices: [OCIDevice]?
    public var cgroupsPath: String?
    public var resources: OCIResources?
    public var rootfsPropagation: String?
    public var seccomp: OCISeccomp?
    public var sysctl: [String: String]?
    public var maskedPaths: [String]?
    public var readonlyPaths: [String]?
    public var mountLabel: String?
    public var intelRdt: OCIIntelRdt?
    public var personality: OCIPersonality?

    public init(
        namespaces: [OCINamespace]? = nil, uidMappings: [OCIIDMapping]? = nil, gidMappings: [OCIIDMapping]? = nil,
        timeOffsets: [String: OCITimeOffset]? = nil, devices: [OCIDevice]? = nil, cgroupsPath: String? = nil,
        resources: OCIResources? = nil, rootfsPropagation: String? = nil, seccomp: OCISeccomp? = nil,
        sysctl: [String: String]? = nil, maskedPaths: [String]? = nil, readonlyPaths: [String]? = nil,
        mountLabel: String? = nil, intelRdt: OCIIntelRdt? = nil, personality: OCIPersonality? = nil
    ) {
        self.namespaces = namespaces
        self.uidMappings = uidMappings
        self.gidMappings = gidMappings
        self.timeOffsets = timeOffsets
        self.devices = devices
        self.cgroupsPath = cgroupsPath
        self.resources = resources
        self.rootfsPropagation = rootfsPropagation
        self.seccomp = seccomp
        self.sysctl = sysctl
        self.maskedPaths = maskedPaths
        self.readonlyPaths = readonlyPaths
        self.mountLabel = mountLabel
        self.intelRdt = intelRdt
        self.personality = personality
    }
}

/// A namespace the container gets: new when `path` is absent or empty, joined otherwise.
public struct OCINamespace: Codable, Sendable, Equatable {
    /// "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time".
    public var type: String
    public var path: String?

    public init(type: String, path: String? = nil) {
        self.type = type
        self.path = path
    }

    /// The path to join, nil when the namespace is a new one (containerd writes "" as well as nothing).
    public var joinPath: String? {
        path.flatMap { $0.isEmpty ? nil : $0 }
    }
}

public struct OCITimeOffset: Codable, Sendable, Equatable {
    public var secs: Int64?
    public var nanosecs: UInt32?

    public init(secs: Int64? = nil, nanosecs: UInt32? = nil) {
        self.secs = secs
        self.nanosecs = nanosecs
    }
}

/// A device node created in the container (`linux.devices`).
public struct OCIDevice: Codable, Sendable, Equatable {
    public var type: String
    public var path: String
    public var major: Int64?
    public var minor: Int64?
    public var fileMode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?

    public init(
        type: String, path: String, major: Int64? = nil, minor: Int64? = nil, fileMode: UInt32? = nil,
        uid: UInt32? = nil, gid: UInt32? = nil
    ) {
        self.type = type
        self.path = path
        self.major = major
        self.minor = minor
        self.fileMode = fileMode
        self.uid = uid
        self.gid = gid
    }
}

public struct OCIIntelRdt: Codable, Sendable, Equatable {
    public var closID: String?
    public var l3CacheSchema: String?
    public var memBwSchema: String?
    public var enableCMT: Bool?
    public var enableMBM: Bool?

    public init(
        closID: String? = nil, l3CacheSchema: String? = nil, memBwSchema: String? = nil, enableCMT: Bool? = nil,
        enableMBM: Bool? = nil
    ) {
        self.closID = closID
        self.l3CacheSchema = l3CacheSchema
        self.memBwSchema = memBwSchema
        self.enableCMT = enableCMT
        self.enableMBM = enableMBM
    }
}

public struct OCIPersonality: Codable, Sendable, Equatable {
    /// "LINUX" or "LINUX32".
    public var domain: String
    public var flags: [String]?

    public init(domain: String, flags: [String]? = nil) {
        self.domain = domain
        self.flags = flags
    }
}

public struct OCISeccomp: Codable, Sendable, Equatable {
    public struct Arg: Codable, Sendable, Equatable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64?
        public var op: String

        public init(index: UInt32, value: UInt64, valueTwo: UInt64? = nil, op: String) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }

    public struct Syscall: Codable, Sendable, Equatable {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt32?
        public var args: [Arg]?

        public init(names: [String], action: String, errnoRet: UInt32? = nil, args: [Arg]? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
        }
    }

    public var defaultAction: String
    public var defaultErrnoRet: UInt32?
    public var architectures: [String]?
    /// "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"...
    public var flags: [String]?
    public var listenerPath: String?
    public var listenerMetadata: String?
    public var syscalls: [Syscall]?

    public init(
        defaultAction: String, defaultErrnoRet: UInt32? = nil, architectures: [String]? = nil, flags: [String]? = nil,
        listenerPath: String? = nil, listenerMetadata: String? = nil, syscalls: [Syscall]? = nil
    ) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.flags = flags
        self.listenerPath = listenerPath
        self.listenerMetadata = listenerMetadata
        self.syscalls = syscalls
    }
}
