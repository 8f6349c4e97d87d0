// kata-agent: the guest's PID 1 and agent. Everything lives in the Agent module.
import Agent

KataAgent.main(arguments: CommandLine.arguments)
