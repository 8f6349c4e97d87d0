import SystemSupport
/// Runs blocking `body` on its own thread and awaits its result, so the concurrency pool is
/// never blocked (QMP round trips, joins). Without a thread to be had, `body` runs here.
func onOwnThread<T: Sendable, Failure: Error>(
    _ name: String, _ body: @escaping @Sendable () throws(Failure) -> T
) async throws(Failure) -> T {
    do {
        return try await WorkerThread.run(name: name, body)
    } catch {
        switch error {
        case .noThread: return try body()
        case .failed(let failure): throw failure
        }
    }
}
