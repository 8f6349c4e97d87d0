// The agent's log: one line per event on stderr (the guest console when PID 1), with a level.
//
//   [    1.234567] kata-agent INFO: listening on vsock://-1:1024
//
// The timestamp is CLOCK_BOOTTIME in seconds, the clock the kernel stamps its own console lines
// with, so agent and kernel lines interleave in time order on the serial console.

#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Severity of a log line; lines below the configured threshold are dropped.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case error = 0
    case warning = 1
    case info = 2
    case debug = 3

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Accepts the names used on the command line and the kernel command line (`agent.log=`).
    public init?(name: String) {
        switch name.lowercased() {
        case "error", "err": self = .error
        case "warning", "warn": self = .warning
        case "info": self = .info
        case "debug", "trace": self = .debug
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .error: "ERROR"
        case .warning: "WARN"
        case .info: "INFO"
        case .debug: "DEBUG"
        }
    }
}

/// Writes log lines to a file descriptor (stderr by default) with one write(2) per line, so
/// lines from concurrent threads never interleave mid-line.
public final class AgentLog: Sendable {
    private let threshold: Atomic<Int>
    private let fd: CInt

    public init(level: LogLevel = .info, fd: CInt = STDERR_FILENO) {
        self.threshold = Atomic(level.rawValue)
        self.fd = fd
    }

    public var level: LogLevel {
        get { LogLevel(rawValue: threshold.load(ordering: .relaxed)) ?? .info }
        set { threshold.store(newValue.rawValue, ordering: .relaxed) }
    }

    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }
    public func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard level.rawValue <= threshold.load(ordering: .relaxed) else { return }
        let line = AgentLog.format(level: level, message: message(), bootTimeNanos: BootClock.nanoseconds())
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, base + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }  // nowhere left to report a broken console
                offset += n
            }
        }
    }

    /// `[    1.234567] kata-agent INFO: message\n`; newlines inside the message become spaces so
    /// that one event stays one line.
    static func format(level: LogLevel, message: String, bootTimeNanos: UInt64) -> String {
        let seconds = String(bootTimeNanos / 1_000_000_000)
        let micros = String(bootTimeNanos % 1_000_000_000 / 1_000)
        let paddedSeconds = String(repeating: " ", count: max(0, 5 - seconds.count)) + seconds
        let paddedMicros = String(repeating: "0", count: max(0, 6 - micros.count)) + micros
        // utf8.contains, not String.contains(String): that one is Foundation's and would link all of
        // Foundation (ICU included, ~45 MB) into the static agent.
        let flat = message.utf8.contains(UInt8(ascii: "\n"))
            ? message.split(separator: "\n").joined(separator: " ") : message
        return "[\(paddedSeconds).\(paddedMicros)] kata-agent \(level): \(flat)\n"
    }
}

/// CLOCK_BOOTTIME, the time since the (guest) kernel booted.
public enum BootClock {
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        guard clock_gettime(CLOCK_BOOTTIME, &ts) == 0 else { return 0 }
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// When the kernel exec'd init, on the boot clock: the time stamp of its "Run /init as init
    /// process" record in the kernel log (/dev/kmsg; logged at KERN_INFO, so present even when
    /// `quiet` keeps it off the console). PID 1's start time in /proc/self/stat would not do: the
    /// init task exists long before the exec, from the kernel's first thread on.
    public static func initExecMilliseconds() -> UInt64? {
        let fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var record = [UInt8](repeating: 0, count: 8192)
        // One record per read, oldest first, until EAGAIN (the end) or a bounded number of them.
        for _ in 0..<4096 {
            let n = record.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EPIPE { continue }  // a record was overwritten while we read
            guard n > 0 else { return nil }
            if let ms = Self.initExecMilliseconds(kmsgRecord: record[..<n]) { return ms }
        }
        return nil
    }

    /// "PRIORITY,SEQUENCE,MICROSECONDS,FLAGS;Run /init as init process" -> MICROSECONDS / 1000.
    static func initExecMilliseconds(kmsgRecord: ArraySlice<UInt8>) -> UInt64? {
        guard let semicolon = kmsgRecord.firstIndex(of: UInt8(ascii: ";")) else { return nil }
        let message = String(decoding: kmsgRecord[(semicolon + 1)...].prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        guard message.hasPrefix("Run "), message.hasSuffix(" as init process") else { return nil }
        let header = kmsgRecord[..<semicolon].split(separator: UInt8(ascii: ","))
        guard header.count >= 3, let micros = UInt64(String(decoding: header[2], as: UTF8.self)) else { return nil }
        return micros / 1000
    }
}
