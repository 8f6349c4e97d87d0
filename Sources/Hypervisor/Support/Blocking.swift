import SystemSupport
/// Runs blocking `body` on its own thread and awaits its result, so the concurrency pool is
/// never blocked (QMP round trips, joins). Without a thread to be had, `body` runs here.
func runBlocking<T: Sendable>(_ name: String, _ body: @escaping @Sendable () -> T) async -> T {
    do {
        return try await WorkerThread.run(name: name, body)
    } catch {
        return body()
    }
}
