// What a host process costs, from /proc/<pid>: CPU time and threads (stat), memory and context
// switches (status), open descriptors (fd/). For the sandbox's metrics: the shim, and QEMU when
// it runs the VM (our in-process VMM's cost is the shim's).

#if canImport(Glibc)
import Glibc
#endif

struct ProcessUsage: Sendable, Equatable {
    /// stat's utime, stime, cutime and cstime, in clock ticks.
    var ticks: [String: UInt64] = [:]
    var cpuSeconds: Double = 0
    var threads: Int = 0
    /// status's fields in lower case (vmrss, rssanon, voluntary_ctxt_switches...); kB as bytes.
    var status: [String: UInt64] = [:]
    var openDescriptors: Int = 0

    /// The status fields reported, Kata's list.
    static let statusItems: Set<String> = [
        "hugetlbpages", "nonvoluntary_ctxt_switches", "rssanon", "rssfile", "rssshmem", "vmdata", "vmexe", "vmhwm", "vmlck",
        "vmlib", "vmpeak", "vmpin", "vmpmd", "vmpte", "vmrss", "vmsize", "vmstk", "vmswap", "voluntary_ctxt_switches",
    ]

    /// The process now; nil once it is gone.
    static func read(pid: Int32, procRoot: String = "/proc") -> ProcessUsage? {
        let directory = "\(procRoot)/\(pid)"
        guard let statText = try? readTextFile(directory + "/stat"), let stat = parseStat(statText),
              let statusText = try? readTextFile(directory + "/status")
        else { return nil }
        let ticksPerSecond = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        return ProcessUsage(
            ticks: ["utime": stat.utime, "stime": stat.stime, "cutime": stat.cutime, "cstime": stat.cstime],
            cpuSeconds: Double(stat.utime + stat.stime) / ticksPerSecond, threads: stat.threads,
            status: parseStatus(statusText), openDescriptors: countEntries(directory + "/fd"))
    }

    /// /proc/<pid>/stat: the fields after the command name (which may hold spaces and parentheses,
    /// so the split starts after the last ')'), proc(5) numbering.
    static func parseStat(_ text: String) -> (utime: UInt64, stime: UInt64, cutime: UInt64, cstime: UInt64, threads: Int)? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" })
        // fields[0] is field 3 (state); utime is field 14, num_threads field 20.
        guard fields.count > 17, let utime = UInt64(fields[11]), let stime = UInt64(fields[12]),
              let cutime = UInt64(fields[13]), let cstime = UInt64(fields[14]), let threads = Int(fields[17])
        else { return nil }
        return (utime, stime, cutime, cstime, threads)
    }

    /// /proc/<pid>/status: `Name:\tvalue [kB]` lines of the reported fields.
    static func parseStatus(_ text: String) -> [String: UInt64] {
        var fields: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            guard statusItems.contains(name) else { continue }
            let words = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let value = words.first.flatMap({ UInt64($0) }) else { continue }
            fields[name] = words.count == 2 && words[1] == "kB" ? value.multipliedReportingOverflow(by: 1024).partialValue : value
        }
        return fields
    }

    /// Entries of a directory, "." and ".." aside; 0 when it cannot be read.
    static func countEntries(_ path: String) -> Int {
        guard let directory = opendir(path) else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in
                name[0] == UInt8(ascii: ".") && (name[1] == 0 || (name[1] == UInt8(ascii: ".") && name[2] == 0))
            }
            if !isDot { count += 1 }
        }
        return count
    }
}
