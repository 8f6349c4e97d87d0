// Shared, lock-protected bookkeeping of a server: its services and its calls in flight.
import Synchronization

/// Registered services, looked up by every connection of a server.
package final class ServiceRegistry: Sendable {
    private let services = Mutex<[String: TTRPCService]>([:])

    package init() {}

    func register(_ service: TTRPCService) {
        services.withLock { $0[service.name] = service }
    }

    func lookup(service: String, method: String) -> Result<TTRPCMethodHandler, TTRPCError> {
        guard let found = services.withLock({ $0[service] }) else {
            return .failure(TTRPCError(.unimplemented, "service \(service) is not registered"))
        }
        guard let handler = found.methods[method] else {
            return .failure(TTRPCError(.unimplemented, "method \(service)/\(method) is not registered"))
        }
        return .success(handler)
    }
}

/// The number of calls a server is running, across its connections.
package final class CallCounter: Sendable {
    private let count = Mutex(0)

    package init() {}

    func begin() {
        count.withLock { $0 += 1 }
    }

    func end() {
        count.withLock { $0 -= 1 }
    }

    var current: Int {
        count.withLock { $0 }
    }
}
