// containerd-shim-kata-v2: the containerd shim v2 for runtime io.containerd.kata.v2.
// The shim protocol lives in the Shim module (ShimMain); the VM-backed sandbox in Runtime
// (VMSandbox), wired in here. See docs/shim.md.
import Runtime
import Shim

#if canImport(Glibc)
import Glibc
#endif

exit(await ShimMain.run(
    arguments: Array(CommandLine.arguments.dropFirst()),
    makeSandbox: { context in
        VMSandbox(sandboxID: context.sandboxID, environment: context.environment, logger: context.logger)
    },
    cleanUpSandbox: VMSandbox.cleanUpAfterDeadShim,
    warmPool: VMSandbox.warmPoolPlan))
