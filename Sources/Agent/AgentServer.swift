// The agent's ttrpc server: the Health and AgentService services on every listen address.

import CGuest
import Synchronization
import TTRPC
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Why a listener could not be opened.
public enum AgentServerError: Error, Equatable, CustomStringConvertible {
    case vsockListen(ListenAddress, errno: Int32)
    /// The server refused the listener; the text of its error.
    case listen(ListenAddress, String)

    public var description: String {
        switch self {
        case .vsockListen(let address, let errno): "listen on \(address): \(Errno(errno))"
        case .listen(let address, let error): "listen on \(address): \(error)"
        }
    }
}

public final class AgentServer: Sendable {
    /// Pending connections a listener queues before accept.
    static let backlog: Int32 = 128

    private let server: TTRPCServer
    private let log: AgentLog
    /// Unix socket files this server created, removed again on stop.
    private let socketFiles = Mutex<[String]>([])

    /// `startedNanos`: CLOCK_BOOTTIME when main began, reported by GetGuestDetails.
    /// `engine`: how containers are run (the guest's PID 1: `.guest`).
    public init(startedNanos: UInt64, log: AgentLog, engine: EngineOptions = .host) {
        self.server = TTRPCServer()
        self.log = log
        server.register(HealthService())
        server.register(AgentService(startedNanos: startedNanos, log: log, engine: ContainerEngine(options: engine)))
    }

    /// Opens every listener, in order; the first failure stops and throws.
    public func listen(on addresses: [ListenAddress]) async throws(AgentServerError) {
        for address in addresses {
            switch address {
            case .unix(let path):
                do {
                    try await server.listen(unixSocketPath: path)
                    socketFiles.withLock { $0.append(path) }
                } catch {
                    throw .listen(address, "\(error)")
                }
            case .vsock(let cid, let port):
                let fd = ks_vsock_listen(cid ?? ks_vmaddr_cid_any, port, AgentServer.backlog)
                guard fd >= 0 else { throw .vsockListen(address, errno: -fd) }
                do {
                    // The server owns fd from here on, and closes it with the listener.
                    try await server.listen(listeningDescriptor: fd)
                } catch {
                    throw .listen(address, "\(error)")
                }
            }
            log.info("listening on \(address)")
        }
    }

    /// Stops accepting, lets calls in flight finish for a moment, then closes every connection.
    public func stop() async {
        await server.shutdown(gracePeriod: .seconds(1))
        for path in socketFiles.withLock({ $0 }) where unlink(path) != 0 && errno != ENOENT {
            log.warning("unlink \(path): \(Errno(errno))")
        }
    }
}
