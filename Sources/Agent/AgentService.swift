// kata.agent.v1.AgentService. GetGuestDetails and GetMetrics here; sandbox, containers, processes and their I/O
// in Containers/AgentService+*.swift; interfaces, routes and neighbours in
// Network/AgentService+Network.swift.

import AgentAPI
import SwiftProtobuf
import TTRPC

struct AgentService: Kata_Agent_V1_AgentServiceProvider {
    /// CLOCK_BOOTTIME when the agent's main began.
    let startedNanos: UInt64
    let log: AgentLog
    /// Containers, processes and the sandbox, shared by every connection.
    let engine: ContainerEngine

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

    func getMetrics(_ request: Kata_Agent_V1_GetMetricsRequest, context: TTRPCCallContext) async throws
        -> Kata_Agent_V1_GuestMetrics
    {
        let snapshot = GuestMetricsReader.read()
        var metrics = Kata_Agent_V1_GuestMetrics()
        metrics.meminfoBytes = snapshot.meminfoBytes
        metrics.cpuSeconds = snapshot.cpuSeconds
        metrics.load1 = snapshot.load1
        metrics.tasksRunning = snapshot.tasksRunning
        metrics.tasksTotal = snapshot.tasksTotal
        metrics.agentRssBytes = snapshot.agentRSSBytes
        metrics.uptimeNs = BootClock.nanoseconds()
        return metrics
    }
}
