// ks_process_confine: what the shim process as a whole may do (docs/security.md, "The shim's
// process-wide filter" and "Capabilities"). In C because libseccomp's API is variadic and the
// capability calls take kernel structures glibc does not declare.
#ifndef KS_PROCESS_CONFINE_H
#define KS_PROCESS_CONFINE_H

#include <stdint.h>

/// Loads the shim's denylist on every thread of the process (TSYNC; no_new_privs set): the calls
/// it lists fail with EPERM (clone3 with ENOSYS, so glibc falls back to clone, whose flags the
/// filter can read), everything else stays allowed and the per-thread allowlists stack on top.
/// Children inherit it. 0 or -errno.
int ks_process_filter_install(void);

/// The number of system calls the denylist names (for tests and docs).
int ks_process_filter_denied_count(void);

/// Limits the process to the capabilities in the bit mask `keep` (bit n = capability n): every
/// other capability leaves the bounding set (so no child, QEMU included, can regain it), and the
/// effective and permitted sets become `keep` (of what they held); the inheritable and ambient
/// sets are cleared. Needs CAP_SETPCAP, which leaves too unless kept. 0 or -errno.
int ks_process_limit_capabilities(uint64_t keep);

/// For tests: forks; the child installs the denylist and makes system call `nr` (up to three
/// arguments), then exits 0 (it returned), 101 (EPERM), 102 (ENOSYS), 103 (another error) or
/// 100 (the filter did not load). Returns the child's wait status, or -errno.
int ks_process_filter_probe(long nr, long a0, long a1, long a2);

#endif
