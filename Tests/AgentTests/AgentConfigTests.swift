import Testing

@testable import Agent

@Suite struct AgentConfigTests {
    @Test func defaultsListenOnVsock1024AtInfo() throws {
        let config = try AgentConfig.resolve(arguments: [], environment: [:], kernelCommandLine: "")
        #expect(config.listen == [.vsock(cid: nil, port: 1024)])
        #expect(config.logLevel == .info)
        #expect(config.action == .run)
    }

    @Test func parsesListenAddresses() throws {
        #expect(try ListenAddress(parsing: "vsock://-1:1024") == .vsock(cid: nil, port: 1024))
        #expect(try ListenAddress(parsing: "vsock://3:5000") == .vsock(cid: 3, port: 5000))
        #expect(try ListenAddress(parsing: "unix:///run/agent.sock") == .unix(path: "/run/agent.sock"))
        #expect(ListenAddress.vsock(cid: nil, port: 1024).description == "vsock://-1:1024")
        #expect(ListenAddress.unix(path: "/a").description == "unix:///a")
    }

    @Test(arguments: [
        "tcp://1.2.3.4:5", "vsock://1024", "vsock://-2:1", "vsock://1:x", "vsock://1:99999999999",
        "unix://relative", "unix://", "vsock://:1", "",
    ])
    func rejectsBadListenAddresses(_ text: String) {
        #expect(throws: AgentConfigError.self) { try ListenAddress(parsing: text) }
    }

    @Test func rejectsUnixPathsLongerThanSunPath() {
        let long = "unix:///" + String(repeating: "a", count: 107)
        #expect(throws: AgentConfigError.self) { try ListenAddress(parsing: long) }
        let fits = "unix:///" + String(repeating: "a", count: 106)
        #expect((try? ListenAddress(parsing: fits)) != nil)
    }

    @Test func flagsBeatEnvironmentBeatKernelCommandLine() throws {
        let kernel = "console=ttyS0 agent.log=debug agent.listen=vsock://-1:2000 reboot=t"
        let fromKernel = try AgentConfig.resolve(arguments: [], environment: [:], kernelCommandLine: kernel)
        #expect(fromKernel.logLevel == .debug)
        #expect(fromKernel.listen == [.vsock(cid: nil, port: 2000)])

        let env = ["KATA_AGENT_LOG_LEVEL": "warn", "KATA_AGENT_LISTEN": "unix:///e.sock,vsock://-1:1"]
        let fromEnv = try AgentConfig.resolve(arguments: [], environment: env, kernelCommandLine: kernel)
        #expect(fromEnv.logLevel == .warning)
        #expect(fromEnv.listen == [.unix(path: "/e.sock"), .vsock(cid: nil, port: 1)])

        let fromFlags = try AgentConfig.resolve(
            arguments: ["--listen", "unix:///f.sock", "--listen=vsock://2:3", "--log-level=error"],
            environment: env, kernelCommandLine: kernel)
        #expect(fromFlags.logLevel == .error)
        #expect(fromFlags.listen == [.unix(path: "/f.sock"), .vsock(cid: 2, port: 3)])
    }

    @Test func versionAndHelpActions() throws {
        #expect(try AgentConfig.resolve(arguments: ["--version"], environment: [:], kernelCommandLine: "").action == .printVersion)
        #expect(try AgentConfig.resolve(arguments: ["-h"], environment: [:], kernelCommandLine: "").action == .printHelp)
    }

    @Test func badArgumentsNameTheProblem() {
        #expect(throws: AgentConfigError.missingValue(flag: "--listen")) {
            try AgentConfig.resolve(arguments: ["--listen"], environment: [:], kernelCommandLine: "")
        }
        #expect(throws: AgentConfigError.unknownArgument("--frobnicate")) {
            try AgentConfig.resolve(arguments: ["--frobnicate"], environment: [:], kernelCommandLine: "")
        }
        #expect(throws: AgentConfigError.invalidLogLevel("loud")) {
            try AgentConfig.resolve(arguments: [], environment: [:], kernelCommandLine: "agent.log=loud")
        }
    }

    @Test func kernelParametersKeepBareWordsAndLastValue() {
        let params = AgentConfig.kernelParameters("quiet a=1 a=2 b==c\n")
        #expect(params["quiet"] == "")
        #expect(params["a"] == "2")
        #expect(params["b"] == "=c")
    }
}
