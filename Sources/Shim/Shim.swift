// Shim: the containerd shim v2.
