// SystemSupport is the one OS layer: the only place that creates threads (WorkerThread, the one
// trampoline) and turns errno values into text (Errno.message / description). This check keeps
// it so: it scans every Swift and C file under Sources/ and fails, naming file and line, on a call
// of pthread_create or strerror (also strerror_r, strerror_l) anywhere else.
//
// Allowed: Sources/SystemSupport/ and SystemSupport's C half in CSupport: ks_sys.c (epoll, eventfd,
// signals, thread names, pipes), ks_spawn.c (Spawn.process) and ks_thread_filter.c
// (ThreadConfinement's seccomp filter).
import Foundation
import Testing

@Suite struct OSLayerBoundaryTests {
    /// A call: the name, optional blanks, an opening parenthesis.
    static var forbidden: Regex<(Substring, Substring, Substring?)> { /\b(pthread_create|strerror(_r|_l)?)\s*\(/ }
    static let allowed = [
        "Sources/SystemSupport/", "Sources/CSupport/ks_sys.c", "Sources/CSupport/ks_spawn.c", "Sources/CSupport/ks_thread_filter.c",
    ]

    /// The repository root, from this file's path (Tests/SystemSupportTests/<file>).
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// "path:line: text" for every forbidden call in `text` (a file at `path`, relative to the root).
    static func findings(in text: String, path: String) -> [String] {
        guard !allowed.contains(where: { path.hasPrefix($0) }) else { return [] }
        var found: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where (line.contains("pthread_create") || line.contains("strerror")) && line.contains(forbidden) {
            found.append("\(path):\(index + 1): \(line.trimmingCharacters(in: .whitespaces))")
        }
        return found
    }

    @Test func onlySystemSupportCreatesThreadsOrFormatsErrno() throws {
        let root = Self.repositoryRoot
        let sources = root.appendingPathComponent("Sources")
        let walker = try #require(FileManager.default.enumerator(atPath: sources.path), "cannot list \(sources.path)")
        var scanned = 0
        var found: [String] = []
        for case let relative as String in walker
        where relative.hasSuffix(".swift") || relative.hasSuffix(".c") || relative.hasSuffix(".h") {
            let text = try String(contentsOf: sources.appendingPathComponent(relative), encoding: .utf8)
            found += Self.findings(in: text, path: "Sources/" + relative)
            scanned += 1
        }
        #expect(scanned > 100, "scanned only \(scanned) files under \(sources.path)")
        #expect(found.isEmpty, """
            pthread_create and strerror belong to SystemSupport (WorkerThread, Errno); use those instead:
            \(found.joined(separator: "\n"))
            """)
    }

    @Test func theCheckSeesAStrayCall() {
        let stray = "import Glibc\nlet text = String(cString: strerror(errno))\n"
        #expect(Self.findings(in: stray, path: "Sources/Agent/Stray.swift") == ["Sources/Agent/Stray.swift:2: let text = String(cString: strerror(errno))"])
        #expect(Self.findings(in: "    int rc = pthread_create (&t, NULL, f, NULL);", path: "Sources/CNet/ks_x.c").count == 1)
        #expect(Self.findings(in: stray, path: "Sources/SystemSupport/Errno.swift").isEmpty)
        #expect(Self.findings(in: #"throw .system(operation: "pthread_create", errno: e)"#, path: "Sources/Netlink/X.swift").isEmpty)
    }
}
