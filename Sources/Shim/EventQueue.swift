// One ordered queue of events, drained by a single task that hands each event to the sink, retrying
// (up to 5 attempts, as containerd's publisher does) while containerd reconnects. On shutdown the
// queue gets a bounded time to drain.

import Dispatch
import Logging
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The ordered event queue.
public final class EventQueue: EventPublisher, Sendable {
    private let continuation: AsyncStream<(TaskEvent, Date)>.Continuation
    private let drained: Task<Void, Never>

    /// Starts draining into `sink`. `retryDelay` is the pause between attempts for one event.
    public init(sink: any EventSink, namespace: String, attempts: Int = 5, retryDelay: Duration = .milliseconds(200),
                logger: Logger = Logger(label: "kata-swift.events")) {
        let (stream, continuation) = AsyncStream<(TaskEvent, Date)>.makeStream()
        self.continuation = continuation
        drained = Task {
            for await (event, timestamp) in stream {
                for attempt in 1...max(1, attempts) {
                    do {
                        try await sink.send(event, namespace: namespace, timestamp: timestamp)
                        break
                    } catch {
                        if attempt == attempts {
                            logger.error("dropping event \(event.topic) after \(attempts) attempts: \(error)")
                        } else {
                            try? await Task.sleep(for: retryDelay)
                        }
                    }
                }
            }
        }
    }

    public func publish(_ event: TaskEvent) {
        continuation.yield((event, Date()))
    }

    /// Stops accepting events and waits up to `timeout` for the queued ones to go out.
    public func drain(timeout: Duration = .seconds(5)) async {
        continuation.finish()
        let drained = self.drained
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await drained.value }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}
