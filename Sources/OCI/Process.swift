// `process`: what runs in the container (and, on its own, the Process JSON of an exec).

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public struct OCIProcess: Codable, Sendable, Equatable {
    public var terminal: Bool?
    public var consoleSize: OCIConsoleSize?
    public var user: OCIUser
    public var args: [String]?
    /// Windows only; kept so a document round-trips.
    public var commandLine: String?
    public var env: [String]?
    public var cwd: String
    public var capabilities: OCICapabilities?
    public var rlimits: [OCIRlimit]?
    public var noNewPrivileges: Bool?
    public var apparmorProfile: String?
    public var oomScoreAdj: Int?
    public var selinuxLabel: String?

    public init(
        terminal: Bool? = nil, consoleSize: OCIConsoleSize? = nil, user: OCIUser = OCIUser(), args: [String]? = nil,
        commandLine: String? = nil, env: [String]? = nil, cwd: String = "/", capabilities: OCICapabilities? = nil,
        rlimits: [OCIRlimit]? = nil, noNewPrivileges: Bool? = nil, apparmorProfile: String? = nil,
        oomScoreAdj: Int? = nil, selinuxLabel: String? = nil
    ) {
        self.terminal = terminal
        self.consoleSize = consoleSize
        self.user = user
        self.args = args
        self.commandLine = commandLine
        self.env = env
        self.cwd = cwd
        self.capabilities = capabilities
        self.rlimits = rlimits
        self.noNewPrivileges = noNewPrivileges
        self.apparmorProfile = apparmorProfile
        self.oomScoreAdj = oomScoreAdj
        self.selinuxLabel = selinuxLabel
    }

    /// Decodes the Process JSON of an exec request.
    public static func decode(_ json: [UInt8]) throws(OCIDecodingError) -> OCIProcess {
        try OCIJSON.decode(OCIProcess.self, json)
    }

    public func encoded() throws(OCIEncodingError) -> [UInt8] {
        try OCIJSON.encode(self)
    }
}

public struct OCIConsoleSize: Codable, Sendable, Equatable {
    public var height: UInt
    public var width: UInt

    public init(height: UInt, width: UInt) {
        self.height = height
        self.width = width
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

    public init(
        bounding: [String]? = nil, effective: [String]? = nil, inheritable: [String]? = nil,
        permitted: [String]? = nil, ambient: [String]? = nil
    ) {
        self.bounding = bounding
        self.effective = effective
        self.inheritable = inheritable
        self.permitted = permitted
        self.ambient = ambient
    }

    /// The same capabilities bounding, effective and permitted (what containerd's default gives).
    public init(all: [String]) {
        self.init(bounding: all, effective: all, permitted: all)
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
