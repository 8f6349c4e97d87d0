// The shim's process-wide confinement (docs/security.md, "The shim's process-wide filter"): the
// daemon and the delete action load a seccomp denylist on every thread. It carries over to every
// child, QEMU included.

import SystemSupport

enum ShimConfinement {
    /// Loads the filter on every thread (TSYNC).
    static func apply() throws(Errno) {
        try ProcessConfinement.installFilter()
    }
}
