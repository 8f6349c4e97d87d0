// A sandbox's way from the shim's start to its first running container, step by step, for the
// shim's log and `make bench`'s start-path table (bench/start-path.sh, docs/performance.md).
// Host steps are on the host's boot clock (CLOCK_BOOTTIME), relative to the moment the shim
// process started (its start time in /proc/self/stat); guest steps are on the guest's boot clock,
// as the agent reports them on the console ("boot clock: init exec X ms, main Y ms, listening Z
// ms"), whose zero is the guest kernel's start.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class StartPath: Sendable {
    struct Step: Equatable, Sendable {
        var name: String
        /// Since the shim process started.
        var milliseconds: Int
    }

    /// The agent's own times, on the guest's boot clock (milliseconds since the kernel started).
    struct GuestTimes: Equatable, Sendable {
        var initExec: Int
        var agentMain: Int
        var listening: Int

        /// The last "boot clock: init exec X ms, main Y ms, listening Z ms" in the console text.
        static func parse(console: String) -> GuestTimes? {
            let marker = "boot clock: init exec "
            guard let range = console.ranges(of: marker).last else { return nil }
            let rest = console[range.upperBound...].prefix { $0 != "\n" && $0 != ")" }
            // "X ms, main Y ms, listening Z ms"
            let numbers = rest.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            guard numbers.count == 3, !rest.ranges(of: ", main ").isEmpty, !rest.ranges(of: ", listening ").isEmpty else { return nil }
            return GuestTimes(initExec: numbers[0], agentMain: numbers[1], listening: numbers[2])
        }
    }

    private struct State {
        var steps: [Step] = []
        var guest: GuestTimes?
        var reported = false
        /// The origin: the shim process's start, boot clock and wall clock.
        var startNanos: UInt64
        var startedUnixMilliseconds: Int
    }

    private let state: Mutex<State>

    init() {
        let now = Self.bootClockNanos()
        let age = Self.processAgeNanos(now: now)
        state = Mutex(State(startNanos: now - age, startedUnixMilliseconds: Self.wallClockMilliseconds() - Int(age / 1_000_000)))
    }

    /// The origin's wall clock (for lining the steps up with a client's own timer).
    var startedUnixMilliseconds: Int { state.withLock { $0.startedUnixMilliseconds } }

    /// Records a step; after the report, steps are no longer the start path and are dropped.
    func mark(_ name: String) {
        let now = Self.bootClockNanos()
        state.withLock { s in
            if !s.reported { s.steps.append(Step(name: name, milliseconds: Int((now &- s.startNanos) / 1_000_000))) }
        }
    }

    /// Starts the path over from now, with `name` as its first step (a warm sandbox claimed by a
    /// pod: its path starts at the claim, not at its shim's start long before).
    func restart(at name: String) {
        let now = Self.bootClockNanos()
        let wall = Self.wallClockMilliseconds()
        state.withLock { s in
            s = State(startNanos: now, startedUnixMilliseconds: wall)
            s.steps = [Step(name: name, milliseconds: 0)]
        }
    }

    static func wallClockMilliseconds() -> Int {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        return Int(wall.tv_sec) * 1000 + Int(wall.tv_nsec) / 1_000_000
    }

    func recordGuest(console: String) {
        guard let times = GuestTimes.parse(console: console) else { return }
        state.withLock { $0.guest = times }
    }

    var steps: [Step] { state.withLock { $0.steps } }
    var guest: GuestTimes? { state.withLock { $0.guest } }

    /// The log line, once: nil after the first call.
    func reportOnce() -> String? {
        let take = state.withLock { s -> Bool in
            defer { s.reported = true }
            return !s.reported
        }
        return take ? line : nil
    }

    var line: String {
        var text = "start path (ms since the shim process started): "
        text += steps.map { "\($0.name) \($0.milliseconds)" }.joined(separator: ", ")
        if let guest {
            text += "; guest boot clock (ms): init exec \(guest.initExec), agent main \(guest.agentMain), agent listening \(guest.listening)"
        }
        text += "; shim started at unix ms \(startedUnixMilliseconds)"
        return text
    }

    static func bootClockNanos() -> UInt64 {
        var ts = timespec()
        guard clock_gettime(CLOCK_BOOTTIME, &ts) == 0 else { return 0 }
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// How long ago this process started, from field 22 of /proc/self/stat (clock ticks after
    /// boot); 0 when it cannot be read.
    static func processAgeNanos(now: UInt64) -> UInt64 {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let ticks = startTicks(stat: stat)
        else { return 0 }
        let hz = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        let started = ticks * (1_000_000_000 / hz)
        return now > started ? now - started : 0
    }

    /// Field 22 (starttime) of a /proc/PID/stat line; the command name (field 2) may hold spaces
    /// and parentheses, so fields are counted after its last ')'.
    static func startTicks(stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}
