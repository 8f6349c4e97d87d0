// How the agent is configured: command-line flags, then environment, then the kernel command
// line (the only input a guest PID 1 gets from the VMM), then defaults.
//
//   kata-agent [--listen URL]... [--log-level LEVEL] [--debug-console URL] [--version] [--help]
//   KATA_AGENT_LISTEN=URL[,URL...]  KATA_AGENT_LOG_LEVEL=LEVEL
//   kernel command line: agent.log=LEVEL  agent.listen=URL[,URL...]
//                        agent.debug_console [agent.debug_console_vport=PORT]  (off by default)
//
// URLs: vsock://CID:PORT (CID -1 = VMADDR_CID_ANY) or unix:///absolute/path.

/// Where the ttrpc server accepts connections.
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// AF_VSOCK; `cid` nil means VMADDR_CID_ANY.
    case vsock(cid: UInt32?, port: UInt32)
    /// A Unix stream socket at an absolute path (host-side tests, debugging).
    case unix(path: String)

    /// vsock port 1024 on any context id: what the shim connects to.
    public static let defaultVsock = ListenAddress.vsock(cid: nil, port: 1024)
    /// vsock port 1026 on any context id: the debug console, when enabled (as in Kata).
    public static let defaultDebugConsole = ListenAddress.vsock(cid: nil, port: 1026)

    /// sun_path holds 108 bytes including the terminating NUL.
    static let maxUnixPathBytes = 107

    public init(parsing text: String) throws(AgentConfigError) {
        if text.hasPrefix("vsock://") {
            let rest = text.dropFirst("vsock://".count)
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw .invalidListenAddress(text, "expected vsock://CID:PORT") }
            let cid: UInt32?
            if parts[0] == "-1" || parts[0] == "any" {
                cid = nil
            } else if let value = UInt32(parts[0]) {
                cid = value
            } else {
                throw .invalidListenAddress(text, "CID must be -1 or an unsigned 32-bit number")
            }
            guard let port = UInt32(parts[1]) else {
                throw .invalidListenAddress(text, "port must be an unsigned 32-bit number")
            }
            self = .vsock(cid: cid, port: port)
        } else if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else { throw .invalidListenAddress(text, "path must be absolute") }
            guard path.utf8.count <= ListenAddress.maxUnixPathBytes else {
                throw .invalidListenAddress(text, "path longer than \(ListenAddress.maxUnixPathBytes) bytes")
            }
            self = .unix(path: path)
        } else {
            throw .invalidListenAddress(text, "scheme must be vsock:// or unix://")
        }
    }

    public var description: String {
        switch self {
        case .vsock(let cid, let port): "vsock://\(cid.map { String($0) } ?? "-1"):\(port)"
        case .unix(let path): "unix://\(path)"
        }
    }
}

/// Why a configuration was refused.
public enum AgentConfigError: Error, Equatable, CustomStringConvertible {
    case invalidListenAddress(String, String)
    case invalidLogLevel(String)
    case invalidDebugConsolePort(String)
    case missingValue(flag: String)
    case unknownArgument(String)

    public var description: String {
        switch self {
        case .invalidListenAddress(let text, let why): "invalid listen address '\(text)': \(why)"
        case .invalidLogLevel(let text): "invalid log level '\(text)' (error, warning, info, debug)"
        case .invalidDebugConsolePort(let text): "invalid agent.debug_console_vport '\(text)' (1-4294967294)"
        case .missingValue(let flag): "\(flag) needs a value"
        case .unknownArgument(let arg): "unknown argument '\(arg)' (try --help)"
        }
    }
}

/// The agent's settings after every source was consulted.
public struct AgentConfig: Sendable, Equatable {
    public enum Action: Sendable, Equatable { case run, printVersion, printHelp }

    public var action: Action = .run
    public var listen: [ListenAddress] = [.defaultVsock]
    public var logLevel: LogLevel = .info
    /// Where the debug console (a shell on a pty per connection) listens; nil: off.
    public var debugConsole: ListenAddress?

    public init() {}

    public static let usage = """
        usage: kata-agent [--listen URL]... [--log-level LEVEL] [--debug-console URL] [--version] [--help]
          --listen URL       vsock://CID:PORT (CID -1: any) or unix:///path; repeatable
                             (default vsock://-1:1024; env KATA_AGENT_LISTEN, kernel agent.listen=)
          --log-level LEVEL  error, warning, info (default) or debug
                             (env KATA_AGENT_LOG_LEVEL, kernel agent.log=)
          --debug-console URL  serve a shell on a pty per connection at URL (off by default;
                             kernel agent.debug_console: vsock port 1026, or agent.debug_console_vport=)
        """

    /// Resolves flags (highest precedence), environment, kernel command line, defaults.
    public static func resolve(
        arguments: [String], environment: [String: String], kernelCommandLine: String
    ) throws(AgentConfigError) -> AgentConfig {
        var config = AgentConfig()
        let kernel = kernelParameters(kernelCommandLine)
        if let level = kernel["agent.log"] { config.logLevel = try parseLevel(level) }
        if let listen = kernel["agent.listen"] { config.listen = try parseList(listen) }
        config.debugConsole = try debugConsole(kernel)
        if let level = environment["KATA_AGENT_LOG_LEVEL"], !level.isEmpty {
            config.logLevel = try parseLevel(level)
        }
        if let listen = environment["KATA_AGENT_LISTEN"], !listen.isEmpty {
            config.listen = try parseList(listen)
        }

        var flagListen: [ListenAddress] = []
        var index = 0
        func value(for flag: String, inline: String?) throws(AgentConfigError) -> String {
            if let inline { return inline }
            index += 1
            guard index < arguments.count else { throw .missingValue(flag: flag) }
            return arguments[index]
        }
        while index < arguments.count {
            let argument = arguments[index]
            let (flag, inline) = splitFlag(argument)
            switch flag {
            case "--listen": flagListen.append(try ListenAddress(parsing: try value(for: flag, inline: inline)))
            case "--log-level": config.logLevel = try parseLevel(try value(for: flag, inline: inline))
            case "--debug-console":
                config.debugConsole = try ListenAddress(parsing: try value(for: flag, inline: inline))
            case "--version": config.action = .printVersion
            case "--help", "-h": config.action = .printHelp
            default: throw .unknownArgument(argument)
            }
            index += 1
        }
        if !flagListen.isEmpty { config.listen = flagListen }
        return config
    }

    /// `key=value` words of the kernel command line; later words win, bare words map to "".
    static func kernelParameters(_ commandLine: String) -> [String: String] {
        var result: [String: String] = [:]
        for word in commandLine.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
            if let eq = word.firstIndex(of: "=") {
                result[String(word[..<eq])] = String(word[word.index(after: eq)...])
            } else {
                result[String(word)] = ""
            }
        }
        return result
    }

    /// `agent.debug_console` (bare, or with any value but 0/false/off) turns the console on, on
    /// vsock port 1026 or `agent.debug_console_vport`.
    static func debugConsole(_ kernel: [String: String]) throws(AgentConfigError) -> ListenAddress? {
        guard let flag = kernel["agent.debug_console"], !["0", "false", "off", "no"].contains(flag) else { return nil }
        guard let text = kernel["agent.debug_console_vport"] else { return .defaultDebugConsole }
        // VMADDR_PORT_ANY (-1) is not a port one can connect to; 0 is reserved.
        guard let port = UInt32(text), port != 0, port != .max else { throw .invalidDebugConsolePort(text) }
        return .vsock(cid: nil, port: port)
    }

    private static func splitFlag(_ argument: String) -> (String, String?) {
        guard argument.hasPrefix("--"), let eq = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<eq]), String(argument[argument.index(after: eq)...]))
    }

    private static func parseLevel(_ text: String) throws(AgentConfigError) -> LogLevel {
        guard let level = LogLevel(name: text) else { throw .invalidLogLevel(text) }
        return level
    }

    private static func parseList(_ text: String) throws(AgentConfigError) -> [ListenAddress] {
        var result: [ListenAddress] = []
        for item in text.split(separator: ",") { result.append(try ListenAddress(parsing: String(item))) }
        guard !result.isEmpty else { throw .invalidListenAddress(text, "empty list") }
        return result
    }
}
