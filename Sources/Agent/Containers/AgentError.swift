// Errors of the agent's container API. Each case names what was asked; `rpc` maps it (and the
// engine's ContainerError) to a ttrpc status once, at the service boundary.
import GuestContainers
import OCI
import TTRPC
import SystemSupport

enum AgentError: Error, CustomStringConvertible {
    case unknownContainer(String)
    case duplicateContainer(String)
    case unknownProcess(container: String, execID: String)
    case duplicateProcess(container: String, execID: String)
    /// A request field is missing or malformed.
    case invalidRequest(field: String, reason: String)
    /// The container or sandbox is not in a state that allows the operation.
    case invalidState(String)
    /// A system call of the agent itself failed.
    case system(operation: String, errno: Int32)
    case engine(ContainerError)

    var description: String {
        switch self {
        case .unknownContainer(let id): "container \(id) not found"
        case .duplicateContainer(let id): "container \(id) already exists"
        case .unknownProcess(let c, let e): "container \(c): process \"\(e)\" not found"
        case .duplicateProcess(let c, let e): "container \(c): process \"\(e)\" already exists"
        case .invalidRequest(let field, let reason): "\(field): \(reason)"
        case .invalidState(let text): text
        case .system(let op, let e): "\(op): \(Errno(e))"
        case .engine(let e): e.description
        }
    }

    var code: TTRPCStatusCode {
        switch self {
        case .unknownContainer, .unknownProcess: .notFound
        case .duplicateContainer, .duplicateProcess: .alreadyExists
        case .invalidRequest: .invalidArgument
        case .invalidState: .failedPrecondition
        case .system: .internal
        case .engine(let e):
            switch e {
            case .invalidSpec: .invalidArgument
            case .invalidTransition: .failedPrecondition
            case .unknownProcess, .processFinished: .notFound
            case .duplicateProcess: .alreadyExists
            case .setup, .system, .cgroup, .childVanished: .internal
            }
        }
    }
}

extension AgentService {
    /// Runs a handler body; any error leaves as a ttrpc status naming the method.
    func rpc<T>(_ context: TTRPCCallContext, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as AgentError {
            log.debug("\(context.method): \(error)")
            throw TTRPCError(error.code, "\(context.method): \(error)")
        } catch let error as ContainerError {
            log.debug("\(context.method): \(error)")
            throw TTRPCError(AgentError.engine(error).code, "\(context.method): \(error)")
        } catch let error as OCIDecodingError {
            log.debug("\(context.method): \(error)")
            throw TTRPCError(.invalidArgument, "\(context.method): \(error)")
        } catch let error as TTRPCError {
            throw error
        } catch is CancellationError {
            throw TTRPCError(.cancelled, "\(context.method): cancelled")
        } catch {
            log.error("\(context.method): \(error)")
            throw TTRPCError(.internal, "\(context.method): \(error)")
        }
    }
}
