// kata.agent.v1.AgentService. This slice implements GetGuestDetails; every other method of the
// API answers Unimplemented, naming itself, until the container engine exists.

import AgentAPI
import SwiftProtobuf
import TTRPC

struct AgentService: Kata_Agent_V1_AgentServiceProvider {
    /// CLOCK_BOOTTIME when the agent's main began.
    let startedNanos: UInt64
    let log: AgentLog

    func getGuestDetails(_ request: Kata_Agent_V1_GuestDetailsRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_GuestDetailsResponse
    {
        let facts: GuestFacts
        do {
            facts = try GuestFactsReader.read()
        } catch {
            log.error("GetGuestDetails: \(error)")
            throw TTRPCError(.internal, "GetGuestDetails: \(error)")
        }
        var response = Kata_Agent_V1_GuestDetailsResponse()
        response.kernelRelease = facts.kernelRelease
        response.kernelVersion = facts.kernelVersion
        response.memTotalBytes = facts.memTotalBytes
        response.memAvailableBytes = facts.memAvailableBytes
        response.onlineCpus = facts.onlineCPUs
        response.agentVersion = AgentVersion.agent
        response.uptimeNs = facts.uptimeNanos
        response.initStartedNs = startedNanos
        return response
    }

    /// The answer of every method this agent does not implement yet.
    private func unimplemented<Response>(_ context: TTRPCCallContext) throws -> Response {
        log.debug("\(context.service)/\(context.method): unimplemented")
        throw TTRPCError(
            .unimplemented,
            "\(context.service)/\(context.method) is not implemented by kata-agent \(AgentVersion.agent)")
    }

    // MARK: sandbox

    func createSandbox(_ request: Kata_Agent_V1_CreateSandboxRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }
    func destroySandbox(_ request: Kata_Agent_V1_DestroySandboxRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }
    func setGuestDateTime(_ request: Kata_Agent_V1_SetGuestDateTimeRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }

    // MARK: containers and processes

    func createContainer(_ request: Kata_Agent_V1_CreateContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }
    func startContainer(_ request: Kata_Agent_V1_StartContainerRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_StartContainerResponse { try unimplemented(context) }
    func removeContainer(_ request: Kata_Agent_V1_RemoveContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }
    func execProcess(_ request: Kata_Agent_V1_ExecProcessRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_ExecProcessResponse { try unimplemented(context) }
    func signalProcess(_ request: Kata_Agent_V1_SignalProcessRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }
    func waitProcess(_ request: Kata_Agent_V1_WaitProcessRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_WaitProcessResponse { try unimplemented(context) }
    func listProcesses(_ request: Kata_Agent_V1_ListProcessesRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_ListProcessesResponse { try unimplemented(context) }
    func updateContainer(_ request: Kata_Agent_V1_UpdateContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }
    func statsContainer(_ request: Kata_Agent_V1_StatsContainerRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_StatsContainerResponse { try unimplemented(context) }
    func pauseContainer(_ request: Kata_Agent_V1_PauseContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }
    func resumeContainer(_ request: Kata_Agent_V1_ResumeContainerRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }
    func getOOMEvent(_ request: Kata_Agent_V1_GetOOMEventRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_OOMEvent { try unimplemented(context) }

    // MARK: process I/O

    func writeStdin(_ request: Kata_Agent_V1_WriteStreamRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_WriteStreamResponse { try unimplemented(context) }
    func readStdout(_ request: Kata_Agent_V1_ReadStreamRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_ReadStreamResponse { try unimplemented(context) }
    func readStderr(_ request: Kata_Agent_V1_ReadStreamRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_ReadStreamResponse { try unimplemented(context) }
    func closeStdin(_ request: Kata_Agent_V1_CloseStdinRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }
    func ttyWinResize(_ request: Kata_Agent_V1_TtyWinResizeRequest, context: TTRPCCallContext) async throws
        -> Google_Protobuf_Empty { try unimplemented(context) }

    // MARK: networking

    func updateInterface(_ request: Kata_Agent_V1_UpdateInterfaceRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_Interface { try unimplemented(context) }
    func listInterfaces(_ request: Kata_Agent_V1_ListInterfacesRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_Interfaces { try unimplemented(context) }
    func updateRoutes(_ request: Kata_Agent_V1_UpdateRoutesRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_Routes { try unimplemented(context) }
    func listRoutes(_ request: Kata_Agent_V1_ListRoutesRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_Routes { try unimplemented(context) }
}
