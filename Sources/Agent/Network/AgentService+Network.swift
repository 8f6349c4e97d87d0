// UpdateInterface, ListInterfaces, UpdateRoutes, ListRoutes, AddARPNeighbors: GuestNetwork over
// a netlink socket of the agent's own namespace (the guest's), one per call. rtnetlink answers
// within the send and receive calls, so a call holds its thread for microseconds.
import AgentAPI
import Netlink
import SwiftProtobuf
import TTRPC

extension AgentService {
    func updateInterface(_ request: Kata_Agent_V1_UpdateInterfaceRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_Interface
    {
        try await network(context) { net in
            guard request.hasInterface else { throw AgentError.invalidRequest(field: "interface", reason: "missing") }
            let interface = try net.updateInterface(request.interface)
            log.info("interface \(interface.name) (\(interface.hwAddr)) configured: mtu \(interface.mtu), \(interface.addresses.count) addresses")
            return interface
        }
    }

    func listInterfaces(_ request: Kata_Agent_V1_ListInterfacesRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_Interfaces
    {
        try await network(context) { net in
            var response = Kata_Agent_V1_Interfaces()
            response.interfaces = try net.listInterfaces()
            return response
        }
    }

    func updateRoutes(_ request: Kata_Agent_V1_UpdateRoutesRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_Routes
    {
        try await network(context) { net in
            var response = Kata_Agent_V1_Routes()
            response.routes = try net.updateRoutes(request.routes.routes)
            log.info("routes updated: \(request.routes.routes.count) requested, \(response.routes.count) in the main table")
            return response
        }
    }

    func listRoutes(_ request: Kata_Agent_V1_ListRoutesRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_Routes
    {
        try await network(context) { net in
            var response = Kata_Agent_V1_Routes()
            response.routes = try net.listRoutes()
            return response
        }
    }

    func addARPNeighbors(_ request: Kata_Agent_V1_AddARPNeighborsRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty
    {
        try await network(context) { net in
            try net.addNeighbors(request.neighbors.neighbors)
            return Google_Protobuf_Empty()
        }
    }

    /// Runs `body` with a fresh netlink socket; netlink errors leave as ttrpc statuses naming the
    /// method, everything else as `rpc` maps it.
    private func network<T>(_ context: TTRPCCallContext, _ body: (GuestNetwork) throws -> T) async throws -> T {
        try await rpc(context) {
            do {
                return try body(GuestNetwork(netlink: RouteNetlink()))
            } catch let error as NetlinkError {
                log.debug("\(context.method): \(error)")
                throw TTRPCError(NetworkErrorCode.code(for: error), "\(context.method): \(error)")
            }
        }
    }
}

/// The ttrpc status of a netlink failure.
enum NetworkErrorCode {
    static func code(for error: NetlinkError) -> TTRPCStatusCode {
        switch error {
        case .notFound: return .notFound
        case .invalidArgument: return .invalidArgument
        case .malformed: return .internal
        case .system(_, let errno), .kernel(_, let errno, _):
            switch errno.rawValue {
            case 17: return .alreadyExists  // EEXIST
            case 2, 19, 3: return .notFound  // ENOENT, ENODEV, ESRCH
            case 22, 34: return .invalidArgument  // EINVAL, ERANGE
            case 101, 113: return .failedPrecondition  // ENETUNREACH, EHOSTUNREACH: a gateway off every subnet
            case 1, 13: return .permissionDenied  // EPERM, EACCES
            case 16: return .failedPrecondition  // EBUSY
            default: return .internal
            }
        }
    }
}
