import CShims

/// What the shim process as a whole may do (ks_process_confine.c; docs/security.md, "The shim's
/// process-wide filter"): a seccomp denylist on every thread, inherited by every child, QEMU
/// included.
public enum ProcessConfinement {
    /// Loads the denylist on every thread of the process (TSYNC). The per-thread allowlists
    /// (ThreadConfinement) stack on top of it; the stricter answer wins.
    public static func installFilter() throws(Errno) {
        _ = try shimResult(ks_process_filter_install())
    }
}
