import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Accepts connections on a listening socket on a thread of its own (poll(2) on the listener and a
/// stop pipe) until `stop()`. Each accepted descriptor (close-on-exec, blocking) goes to `accept`
/// on that thread, which must hand it on without blocking. The stop pipe stays readable once
/// stopped, so the connections' own poll loops can watch `stopDescriptor` to end too.
public final class AcceptLoop: Sendable {
    /// Readable once `stop()` was called; valid for the loop's whole life.
    public var stopDescriptor: Int32 { stopRead.rawValue }

    private let stopRead: FileDescriptor
    private let stopWrite: FileDescriptor
    private let thread: Mutex<WorkerThread?> = Mutex(nil)
    private let stopped = Mutex(false)

    /// Starts accepting on `listener` (which stays the caller's: close it after `stop()`).
    /// `failed` hears why the loop ended early (poll failing), if it does.
    public init(
        listener: Int32, name: String, failed: @escaping @Sendable (Errno) -> Void = { _ in },
        accept: @escaping @Sendable (Int32) -> Void
    ) throws(Errno) {
        var fds: [Int32] = [-1, -1]
        let rc = ks_pipe_cloexec(&fds)
        guard rc == 0 else { throw Errno(rawValue: -rc) }
        stopRead = FileDescriptor(owning: fds[0])
        stopWrite = FileDescriptor(owning: fds[1])
        let stop = stopRead.rawValue
        let worker = try WorkerThread(name: name) {
            while true {
                var polled = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                              pollfd(fd: stop, events: Int16(POLLIN), revents: 0)]
                if poll(&polled, 2, -1) < 0 {
                    if errno == EINTR { continue }
                    failed(Errno(rawValue: errno))
                    return
                }
                if polled[1].revents != 0 { return }
                guard polled[0].revents != 0 else { continue }
                let client = ks_unix_accept(listener, 0)
                if client >= 0 {
                    accept(client)
                } else if client == -EMFILE || client == -ENFILE {
                    usleep(10_000)  // out of descriptors: the pending connection waits, we do not spin
                }  // EAGAIN, ECONNABORTED: the next poll tells
            }
        }
        thread.withLock { $0 = worker }
    }

    /// Ends the loop and waits for its thread. Idempotent; never call from an `accept` handler.
    public func stop() {
        let first = stopped.withLock { s -> Bool in
            defer { s = true }
            return !s
        }
        guard first else { return }
        var byte: UInt8 = 1
        _ = write(stopWrite.rawValue, &byte, 1)  // never read: stays readable for every poller
        thread.withLock { $0 }?.join()
    }

    deinit { stop() }
}
