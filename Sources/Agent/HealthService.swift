// kata.agent.v1.Health: is the agent serving, and which version is it.

import AgentAPI
import TTRPC

/// The agent's build and API versions, reported by Health.Version and GetGuestDetails.
public enum AgentVersion {
    /// kata-agent's own version.
    public static let agent = "0.1.0"
    /// The version of Protos/agent.proto this agent speaks.
    public static let api = "1"
}

struct HealthService: Kata_Agent_V1_HealthProvider {
    func check(_ request: Kata_Agent_V1_CheckRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_HealthCheckResponse
    {
        // Answering at all means the server runs; there is no per-service state yet.
        var response = Kata_Agent_V1_HealthCheckResponse()
        response.status = .serving
        return response
    }

    func version(_ request: Kata_Agent_V1_CheckRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_VersionCheckResponse
    {
        var response = Kata_Agent_V1_VersionCheckResponse()
        response.apiVersion = AgentVersion.api
        response.agentVersion = AgentVersion.agent
        return response
    }
}
