import ArgumentParser

@main
struct KataCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kata-ctl",
        abstract: "kata-swift host tool.",
        subcommands: [BootCommand.self, CheckCommand.self, EnvCommand.self, ExecCommand.self, ListCommand.self, MonitorCommand.self])
}
