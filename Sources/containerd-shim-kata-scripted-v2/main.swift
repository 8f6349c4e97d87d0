// containerd-shim-kata-scripted-v2: TEST ONLY. The same shim protocol as containerd-shim-kata-v2
// (ShimMain), with ScriptedSandbox in place of the VM: containerd runs it for the runtime
// io.containerd.kata-scripted.v2. Nothing installs it; the shipped shim cannot select it.
import Shim

#if canImport(Glibc)
import Glibc
#endif

exit(await ShimMain.run(
    arguments: Array(CommandLine.arguments.dropFirst()),
    makeSandbox: { context in
        context.logger.warning("kata-swift: the scripted TEST shim: no VM, no isolation")
        return ScriptedSandbox()
    }))
