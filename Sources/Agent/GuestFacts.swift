// Facts about the guest the agent runs in, for GetGuestDetails: kernel, memory, CPUs, clocks.
// The parsers are pure functions over the files' text so tests can feed them anything.

import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// What GetGuestDetails reports, independent of the wire type.
public struct GuestFacts: Sendable, Equatable {
    public var kernelRelease: String
    public var kernelVersion: String
    public var memTotalBytes: UInt64
    public var memAvailableBytes: UInt64
    public var onlineCPUs: UInt32
    public var uptimeNanos: UInt64
}

/// Why a fact could not be read.
public enum GuestFactsError: Error, Equatable, CustomStringConvertible {
    case uname(errno: Int32)
    case readFile(SystemCallError)
    case meminfoFieldMissing(String)
    case meminfoFieldInvalid(String, String)
    case cpuListInvalid(String)

    public var description: String {
        switch self {
        case .uname(let errno): "uname: \(Errno(errno))"
        case .readFile(let error): "\(error)"
        case .meminfoFieldMissing(let field): "/proc/meminfo has no \(field) line"
        case .meminfoFieldInvalid(let field, let line): "/proc/meminfo \(field) line is malformed: '\(line)'"
        case .cpuListInvalid(let text): "CPU list is malformed: '\(text)'"
        }
    }
}

public enum GuestFactsReader {
    /// Reads every fact from the running kernel.
    public static func read(procRoot: String = "/proc", sysRoot: String = "/sys") throws(GuestFactsError) -> GuestFacts {
        let (release, version) = try kernel()
        let meminfo: String
        do { meminfo = try readWholeTextFile(procRoot + "/meminfo", limit: 1 << 20) } catch {
            throw .readFile(SystemCallError("read", procRoot + "/meminfo", errno: error.rawValue))
        }
        let memory = try parseMeminfo(meminfo)
        return GuestFacts(
            kernelRelease: release, kernelVersion: version,
            memTotalBytes: memory.total, memAvailableBytes: memory.available,
            onlineCPUs: try onlineCPUs(sysRoot: sysRoot),
            uptimeNanos: BootClock.nanoseconds())
    }

    /// uname(2) release and version (`uname -r`, `uname -v`).
    public static func kernel() throws(GuestFactsError) -> (release: String, version: String) {
        var names = utsname()
        guard uname(&names) == 0 else { throw .uname(errno: errno) }
        return (cString(names.release), cString(names.version))
    }

    /// Online CPUs from /sys/devices/system/cpu/online (a list like "0-3,6"); sysconf as a fallback
    /// when sysfs is not mounted.
    public static func onlineCPUs(sysRoot: String = "/sys") throws(GuestFactsError) -> UInt32 {
        if let text = try? readWholeTextFile(sysRoot + "/devices/system/cpu/online", limit: 1 << 20) {
            return try countCPUList(text)
        }
        return UInt32(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// MemTotal and MemAvailable in bytes. The kernel prints them in kB (KiB).
    public static func parseMeminfo(_ text: String) throws(GuestFactsError) -> (total: UInt64, available: UInt64) {
        var total: UInt64?
        var available: UInt64?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("MemTotal:") {
                total = try kibibytes(line, field: "MemTotal")
            } else if line.hasPrefix("MemAvailable:") {
                available = try kibibytes(line, field: "MemAvailable")
            }
        }
        guard let total else { throw .meminfoFieldMissing("MemTotal") }
        guard let available else { throw .meminfoFieldMissing("MemAvailable") }
        return (total, available)
    }

    /// Counts the CPUs of a kernel CPU list ("0", "0-3", "0-3,6,8-9").
    public static func countCPUList(_ text: String) throws(GuestFactsError) -> UInt32 {
        let trimmed = text.split(separator: "\n").first.map(String.init) ?? ""
        guard !trimmed.isEmpty else { throw .cpuListInvalid(text) }
        var count: UInt32 = 0
        for range in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = range.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2,
                let low = UInt32(bounds[0]), let high = UInt32(bounds[bounds.count - 1]), low <= high,
                high - low < 65536
            else { throw .cpuListInvalid(text) }
            count += high - low + 1
        }
        return count
    }

    private static func kibibytes(_ line: Substring, field: String) throws(GuestFactsError) -> UInt64 {
        let words = line.split(separator: " ")
        guard words.count == 3, words[2] == "kB", let value = UInt64(words[1]),
            value <= UInt64.max / 1024
        else { throw .meminfoFieldInvalid(field, String(line)) }
        return value * 1024
    }

    /// The NUL-terminated contents of a fixed-size C char array (utsname fields).
    private static func cString<T>(_ field: T) -> String {
        withUnsafeBytes(of: field) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
