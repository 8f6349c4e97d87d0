// The command line containerd 1.6 gives a shim, in Go `flag` syntax:
//   -namespace ns -address a -publish-binary b -id x [-debug] [-bundle b] [start|delete]
// Go accepts `-f v`, `-f=v`, `--f` and `--f=v`; bool flags take no separate value; parsing stops at
// the first non-flag argument or after `--`. No action means: run as the daemon.
// Our own action `warm` (with `-pool` and `-config`) is what `start` spawns to fill the warm pool
// (docs/warm-sandboxes.md); containerd never passes it.

/// What the shim was asked to do.
public enum ShimAction: Equatable, Sendable {
    /// Create the socket, spawn the daemon, print its address (containerd's `start`).
    case start
    /// Clean up after a task whose daemon may be gone (containerd's `delete`).
    case delete
    /// Serve the task service on the socket inherited as fd 3 (the re-exec'd child of `start`).
    case daemon
    /// Boot a sandbox ahead of demand and wait in the warm pool (`-pool`) for `start` to hand it a
    /// pod, then serve as that pod's daemon (WarmDaemon).
    case warm
    /// `-v`: print the version.
    case version
}

/// The parsed command line.
public struct ShimFlags: Equatable, Sendable {
    public var namespace = ""
    public var id = ""
    public var address = ""
    public var publishBinary = ""
    public var bundle = ""
    public var socket = ""
    public var debug = false
    /// `warm` only: the pool directory, and the configuration file the sandbox boots with.
    public var pool = ""
    public var config = ""
    public var action = ShimAction.daemon

    public init() {}

    private static let stringFlags: Set<String> = [
        "namespace", "id", "address", "publish-binary", "bundle", "socket", "pool", "config",
    ]
    private static let boolFlags: Set<String> = ["debug", "v"]

    /// Parses `arguments` (without the program name).
    public init(parsing arguments: [String]) throws(ShimFlagsError) {
        var index = 0
        var positional: [String] = []
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                positional = Array(arguments[index...])
                break
            }
            guard argument.count > 1, argument.hasPrefix("-") else {
                positional = Array(arguments[(index - 1)...])
                break
            }
            var body = argument.dropFirst()
            if body.hasPrefix("-") { body = body.dropFirst() }
            guard !body.isEmpty, !body.hasPrefix("-"), !body.hasPrefix("=") else { throw .badSyntax(argument) }
            let name: String
            var value: String?
            if let equals = body.firstIndex(of: "=") {
                name = String(body[..<equals])
                value = String(body[body.index(after: equals)...])
            } else {
                name = String(body)
            }
            if Self.boolFlags.contains(name) {
                let on: Bool
                switch value {
                case nil, "1", "t", "T", "true", "TRUE", "True": on = true
                case "0", "f", "F", "false", "FALSE", "False": on = false
                case let other?: throw .badBool(flag: name, value: other)
                }
                if name == "debug" { debug = on } else if on { action = .version }
                continue
            }
            guard Self.stringFlags.contains(name) else { throw .unknownFlag(name) }
            if value == nil {
                guard index < arguments.count else { throw .missingValue(name) }
                value = arguments[index]
                index += 1
            }
            set(name, value ?? "")
        }
        if action == .version { return }
        switch positional.first {
        case nil: action = .daemon
        case "start": action = .start
        case "delete": action = .delete
        case "warm": action = .warm
        case let other?: throw .unknownAction(other)
        }
        if positional.count > 1 { throw .unexpectedArgument(positional[1]) }
    }

    private mutating func set(_ name: String, _ value: String) {
        switch name {
        case "namespace": namespace = value
        case "id": id = value
        case "address": address = value
        case "publish-binary": publishBinary = value
        case "bundle": bundle = value
        case "pool": pool = value
        case "config": config = value
        default: socket = value
        }
    }

    /// The flags for the daemon: the same as ours, with no action (what `start` re-execs itself with).
    public var daemonArguments: [String] {
        var arguments = ["-namespace", namespace, "-id", id, "-address", address]
        if !publishBinary.isEmpty { arguments += ["-publish-binary", publishBinary] }
        if !bundle.isEmpty { arguments += ["-bundle", bundle] }
        if debug { arguments.append("-debug") }
        return arguments
    }

    /// Checks the flags every action needs.
    public func validate() throws(ShimFlagsError) {
        if action == .version { return }
        if namespace.isEmpty { throw .missingFlag("namespace") }
        if id.isEmpty { throw .missingFlag("id") }
        if !Identifier.isValid(id) { throw .invalidIdentifier(id) }
        if action != .delete && address.isEmpty { throw .missingFlag("address") }
        if action == .warm && pool.isEmpty { throw .missingFlag("pool") }
    }
}

/// A command line the shim cannot accept.
public enum ShimFlagsError: Error, Equatable, CustomStringConvertible {
    case unknownFlag(String)
    case missingValue(String)
    case badBool(flag: String, value: String)
    case badSyntax(String)
    case unknownAction(String)
    case unexpectedArgument(String)
    case missingFlag(String)
    case invalidIdentifier(String)

    public var description: String {
        switch self {
        case .unknownFlag(let name): "flag provided but not defined: -\(name)"
        case .missingValue(let name): "flag needs an argument: -\(name)"
        case .badBool(let flag, let value): "invalid boolean value \"\(value)\" for -\(flag)"
        case .badSyntax(let argument): "bad flag syntax: \(argument)"
        case .unknownAction(let action): "unknown action \"\(action)\" (expected start or delete)"
        case .unexpectedArgument(let argument): "unexpected argument \"\(argument)\""
        case .missingFlag(let name): "missing required flag -\(name)"
        case .invalidIdentifier(let id): Identifier.problem("-id", id)
        }
    }
}
