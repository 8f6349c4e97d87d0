// The guest's console in the shim's log, line by line at debug level, when the hypervisor's
// `enable_debug` (or the shim's debug level) asks for it: what Kata logs as "vmconsole". The
// backend hands over console bytes on whatever thread produced them (QEMU's pipe reader, or a
// vCPU thread of our VMM under its seccomp filter), so that side only appends to a buffer under a
// lock; a task of the shim's drains it and logs complete lines.

import Logging
import Synchronization

final class GuestConsoleLog: Sendable {
    /// Longest line kept; the rest of a longer one is dropped (a guest can print without newlines).
    static let maxLine = 4096
    /// Most bytes waiting to be logged; beyond it new output is dropped until the drain catches up.
    static let maxPending = 256 * 1024

    private struct State {
        var pending: [UInt8] = []
        var partial: [UInt8] = []
        var dropped = 0
    }

    private let state = Mutex(State())
    private let logger: Logger
    private let prefix: String

    init(logger: Logger, sandboxID: String) {
        self.logger = logger
        prefix = "sandbox \(sandboxID): console: "
    }

    /// The backend's console callback: append only.
    func append(_ bytes: [UInt8]) {
        state.withLock { s in
            let room = max(0, Self.maxPending - s.pending.count)
            s.pending += bytes.prefix(room)
            s.dropped += bytes.count - min(bytes.count, room)
        }
    }

    /// The complete lines received so far (and, with `flush`, the unfinished last one). One
    /// caller (the drain task) at a time: the unfinished line is kept for its next call.
    func takeLines(flush: Bool = false) -> [String] {
        let (kept, bytes, dropped) = state.withLock { s -> ([UInt8], [UInt8], Int) in
            defer {
                s.partial = []
                s.pending.removeAll(keepingCapacity: true)
                s.dropped = 0
            }
            return (s.partial, s.pending, s.dropped)
        }
        var partial = kept
        var lines: [String] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                lines.append(Self.text(partial))
                partial.removeAll(keepingCapacity: true)
            } else if byte != UInt8(ascii: "\r"), partial.count < Self.maxLine {
                partial.append(byte)
            }
        }
        if flush, !partial.isEmpty {
            lines.append(Self.text(partial))
            partial = []
        }
        let rest = partial
        state.withLock { $0.partial = rest }
        if dropped > 0 { lines.append("(\(dropped) bytes of console output dropped)") }
        return lines
    }

    /// Logs what arrived; the shim calls it periodically and once more when the VM is gone.
    func drain(flush: Bool = false) {
        for line in takeLines(flush: flush) { logger.debug("\(prefix)\(line)") }
    }

    private static func text(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
