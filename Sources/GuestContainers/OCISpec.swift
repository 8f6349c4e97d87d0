// The subset of the OCI runtime spec (config.json, and the Process JSON of an exec) that the
// engine reads. Unknown fields are ignored by Codable; values are checked in SpecValidation.swift.
import FoundationEssentials

public struct OCISpec: Codable, Sendable, Equatable {
    public var ociVersion: String?
    public var process: OCIProcess?
    public var root: OCIRoot?
    public var hostname: String?
    public var mounts: [OCIMount]?
    public var linux: OCILinux?
    public var annotations: [String: String]?

    public init(
        process: OCIProcess? = nil, root: OCIRoot? = nil, hostname: String? = nil, mounts: [OCIMount]? = nil,
        linux: OCILinux? = nil
    ) {
        self.process = process
        self.root = root
        self.hostname = hostname
        self.mounts = mounts
        self.linux = linux
    }

    /// Decodes config.json; a malformed document gives `ContainerError.invalidSpec` naming the field.
    public static func decode(_ json: [UInt8]) throws(ContainerError) -> OCISpec {
        try decodeJSON(OCISpec.self, json)
    }
}

public struct OCIProcess: Codable, Sendable, Equatable {
    public var terminal: Bool?
    public var user: OCIUser
    public var args: [String]?
    public var env: [String]?
    public var cwd: String
    public var capabilities: OCICapabilities?
    public var rlimits: [OCIRlimit]?
    public var noNewPrivileges: Bool?

    public init(
        terminal: Bool? = nil, user: OCIUser = OCIUser(), args: [String], env: [String]? = nil, cwd: String = "/",
        capabilities: OCICapabilities? = nil, rlimits: [OCIRlimit]? = nil, noNewPrivileges: Bool? = nil
    ) {
        self.terminal = terminal
        self.user = user
        self.args = args
        self.env = env
        self.cwd = cwd
        self.capabilities = capabilities
        self.rlimits = rlimits
        self.noNewPrivileges = noNewPrivileges
    }

    /// Decodes the Process JSON of an exec request.
    public static func decode(_ json: [UInt8]) throws(ContainerError) -> OCIProcess {
        try decodeJSON(OCIProcess.self, json)
    }
}

public struct OCIUser: Codable, Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var umask: UInt32?
    public var additionalGids: [UInt32]?

    public init(uid: UInt32 = 0, gid: UInt32 = 0, umask: UInt32? = nil, additionalGids: [UInt32]? = nil) {
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.additionalGids = additionalGids
    }
}

public struct OCICapabilities: Codable, Sendable, Equatable {
    public var bounding: [String]?
    public var effective: [String]?
    public var inheritable: [String]?
    public var permitted: [String]?
    public var ambient: [String]?

    public init(all: [String]) {
        bounding = all
        effective = all
        permitted = all
        inheritable = nil
        ambient = nil
    }
}

public struct OCIRlimit: Codable, Sendable, Equatable {
    public var type: String
    public var hard: UInt64
    public var soft: UInt64

    public init(type: String, hard: UInt64, soft: UInt64) {
        self.type = type
        self.hard = hard
        self.soft = soft
    }
}

public struct OCIRoot: Codable, Sendable, Equatable {
    public var path: String
    public var readonly: Bool?

    public init(path: String, readonly: Bool? = nil) {
        self.path = path
        self.readonly = readonly
    }
}

public struct OCIMount: Codable, Sendable, Equatable {
    public var destination: String
    public var type: String?
    public var source: String?
    public var options: [String]?

    public init(destination: String, type: String?, source: String?, options: [String]? = nil) {
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
    }
}

public struct OCILinux: Codable, Sendable, Equatable {
    public var namespaces: [OCINamespace]?
    public var resources: OCIResources?
    public var cgroupsPath: String?
    public var seccomp: OCISeccomp?
    public var maskedPaths: [String]?
    public var readonlyPaths: [String]?

    public init(
        namespaces: [OCINamespace]? = nil, resources: OCIResources? = nil, cgroupsPath: String? = nil,
        seccomp: OCISeccomp? = nil, maskedPaths: [String]? = nil, readonlyPaths: [String]? = nil
    ) {
        self.namespaces = namespaces
        self.resources = resources
        self.cgroupsPath = cgroupsPath
        self.seccomp = seccomp
        self.maskedPaths = maskedPaths
        self.readonlyPaths = readonlyPaths
    }
}

public struct OCINamespace: Codable, Sendable, Equatable {
    public var type: String
    public var path: String?

    public init(type: String, path: String? = nil) {
        self.type = type
        self.path = path
    }
}

public struct OCIResources: Codable, Sendable, Equatable {
    public struct Memory: Codable, Sendable, Equatable {
        public var limit: Int64?
        public init(limit: Int64?) { self.limit = limit }
    }
    public struct CPU: Codable, Sendable, Equatable {
        public var shares: UInt64?
        public var quota: Int64?
        public var period: UInt64?
        public init(shares: UInt64? = nil, quota: Int64? = nil, period: UInt64? = nil) {
            self.shares = shares
            self.quota = quota
            self.period = period
        }
    }
    public struct Pids: Codable, Sendable, Equatable {
        public var limit: Int64
        public init(limit: Int64) { self.limit = limit }
    }
    public var memory: Memory?
    public var cpu: CPU?
    public var pids: Pids?

    public init(memory: Memory? = nil, cpu: CPU? = nil, pids: Pids? = nil) {
        self.memory = memory
        self.cpu = cpu
        self.pids = pids
    }

    /// Decodes the LinuxResources JSON of an Update request.
    public static func decode(_ json: [UInt8]) throws(ContainerError) -> OCIResources {
        try decodeJSON(OCIResources.self, json)
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
    public var syscalls: [Syscall]?

    public init(
        defaultAction: String, defaultErrnoRet: UInt32? = nil, architectures: [String]? = nil,
        syscalls: [Syscall]? = nil
    ) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.syscalls = syscalls
    }
}

/// JSONDecoder with DecodingError turned into `invalidSpec` naming the JSON path.
func decodeJSON<T: Decodable>(_ type: T.Type, _ json: [UInt8]) throws(ContainerError) -> T {
    do {
        return try JSONDecoder().decode(T.self, from: Data(json))
    } catch let error as DecodingError {
        switch error {
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
            throw .invalidSpec(field: fieldPath(ctx.codingPath), reason: ctx.debugDescription)
        case .keyNotFound(let key, let ctx):
            throw .invalidSpec(field: fieldPath(ctx.codingPath + [key]), reason: "required field is missing")
        @unknown default:
            throw .invalidSpec(field: "(document)", reason: "\(error)")
        }
    } catch {
        throw .invalidSpec(field: "(document)", reason: "\(error)")
    }
}

private func fieldPath(_ path: [any CodingKey]) -> String {
    if path.isEmpty { return "(document)" }
    var out = ""
    for key in path {
        if let i = key.intValue {
            out += "[\(i)]"
        } else {
            out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
        }
    }
    return out
}
