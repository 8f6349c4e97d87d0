import SystemSupport
/// Runs blocking `body` on its own thread and awaits its result, so the concurrency pool is
/// never blocked (QMP round trips, joins).
func runBlocking<T: Sendable>(_ name: String, _ body: @escaping @Sendable () -> T) async -> T {
    let (stream, continuation) = AsyncStream<T>.makeStream(bufferingPolicy: .bufferingNewest(1))
    let thread: WorkerThread
    do {
        thread = try WorkerThread(name: name) { continuation.yield(body()) }
    } catch {
        return body()  // no thread to be had: run it here rather than fail
    }
    var result: T?
    for await value in stream {
        result = value
        break
    }
    thread.join()
    guard let result else { return body() }
    return result
}
