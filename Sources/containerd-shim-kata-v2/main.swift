// containerd-shim-kata-v2: the containerd shim v2 for runtime io.containerd.kata.v2.
// Everything lives in the Shim module (ShimMain); see docs/shim.md.
import Shim

#if canImport(Glibc)
import Glibc
#endif

exit(await ShimMain.run(arguments: Array(CommandLine.arguments.dropFirst())))
