import Synchronization

/// A value behind a mutex, as a class so closures and devices can share it.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    var value: Value { mutex.withLock { $0 } }
    func mutate<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
