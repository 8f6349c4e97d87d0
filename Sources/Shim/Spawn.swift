// Spawning processes with an exact descriptor layout: the daemon (fd 3 = listener, 0-2 = /dev/null)
// and logging binaries (fd 3 = stdout, 4 = stderr, 5 = ready pipe), through SystemSupport's
// Spawn.process (posix_spawn, so no Swift code runs in the child).

import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A failed spawn.
public enum SpawnError: Error, Equatable, CustomStringConvertible {
    case spawn(path: String, errno: Int32)

    public var description: String {
        switch self {
        case .spawn(let path, let errno): "spawn \(path): \(Errno(errno))"
        }
    }
}

/// Spawns `path`; child fd i is `fds[i]` (nil: /dev/null); all other descriptors are closed.
/// Returns the child's pid.
func spawnProcess(
    path: String, arguments: [String], environment: [String], fds: [Int32?], newProcessGroup: Bool
) throws(SpawnError) -> pid_t {
    do {
        return try Spawn.process(
            path: path, arguments: [path] + arguments, environment: environment, descriptors: fds,
            newProcessGroup: newProcessGroup)
    } catch {
        throw .spawn(path: path, errno: error.rawValue)
    }
}

/// The environment of this process by name (a repeated name: the last one wins).
func currentEnvironmentByName() -> [String: String] {
    Dictionary(currentEnvironment().compactMap { entry -> (String, String)? in
        guard let equals = entry.firstIndex(of: "=") else { return nil }
        return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
    }, uniquingKeysWith: { $1 })
}

/// The environment of this process as `KEY=value` strings.
func currentEnvironment() -> [String] {
    var result: [String] = []
    var cursor = environ
    while let entry = cursor.pointee {
        result.append(String(cString: entry))
        cursor += 1
    }
    return result
}

/// The path of the running executable.
public func currentExecutablePath() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = buffer.withUnsafeMutableBufferPointer { buffer -> Int in
        guard let base = buffer.baseAddress else { return -1 }
        return readlink("/proc/self/exe", base, buffer.count - 1)
    }
    guard count > 0 else { return CommandLine.arguments[0] }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
