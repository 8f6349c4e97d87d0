// ks_process_confine: see include/ks_process_confine.h.
#define _GNU_SOURCE
#include "ks_process_confine.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// What a shim (and the QEMU it starts) never needs, in the spirit of Docker's default profile and
// Firecracker's filters: the kernel's own state (modules, kexec, reboot, swap, clocks, accounting,
// quotas, the kernel log), introspection of other processes (ptrace and its relatives), handles
// that bypass path checks, the kernel keyring, port I/O, eBPF beyond the four commands port
// forwarding needs (add_bpf below), perf, userfaultfd (a common exploit
// primitive), io_uring (a large attack surface; QEMU falls back to epoll), and obsolete calls.
static const char *const denied[] = {
    "init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms", "query_module",
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup",
    "perf_event_open", "userfaultfd", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "pidfd_getfd", "open_by_handle_at", "name_to_handle_at", "keyctl", "add_key", "request_key",
    "iopl", "ioperm", "modify_ldt", "lookup_dcookie", "uselib", "nfsservctl", "_sysctl", "sysfs",
    "ustat", "io_uring_setup", "io_uring_enter", "io_uring_register",
};

#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

// personality: the only personas a shim or QEMU may set are PER_LINUX (0), PER_LINUX32 (8) and
// UNAME26 (0x20000) and their combination, and 0xffffffff only asks for the current one (Docker's
// profile allows the same values). The kernel reads the low 32 bits only. libseccomp allows one
// comparison per argument in a rule, so "not one of these" is spelled as one rule per bit:
// with bit 31 clear, a bit other than 3 or 17 set is refused; with bit 31 set, any bit 0-30 clear
// is refused (the value is not 0xffffffff).
static int add_personality(scmp_filter_ctx ctx) {
    const uint64_t high = 1ULL << 31;
    for (int bit = 0; bit < 31; bit++) {
        uint64_t b = 1ULL << bit;
        int rc;
        if (bit != 3 && bit != 17) {
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, b | high, b));
            if (rc < 0) return rc;
        }
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, b | high, high));
        if (rc < 0) return rc;
    }
    return 0;
}

// bpf: CRI port forwarding (ks_portfwd.c) creates one sockmap, puts its listener in it, loads one
// sk_lookup program and links it to the pod's network namespace: BPF_MAP_CREATE,
// BPF_MAP_UPDATE_ELEM, BPF_PROG_LOAD, BPF_LINK_CREATE. Every other command (reading maps and
// programs by id, attaching elsewhere, pinning, iterators, BTF) is refused: one rule per refused
// command below BPF_LINK_CREATE, one for all above it.
static int add_bpf(scmp_filter_ctx ctx) {
    int rc;
    for (int cmd = 0; cmd < BPF_LINK_CREATE; cmd++) {
        if (cmd == BPF_MAP_CREATE || cmd == BPF_MAP_UPDATE_ELEM || cmd == BPF_PROG_LOAD) continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(bpf), 1, SCMP_A0(SCMP_CMP_EQ, (uint64_t)cmd));
        if (rc < 0) return rc;
    }
    return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(bpf), 1, SCMP_A0(SCMP_CMP_GT, (uint64_t)BPF_LINK_CREATE));
}

static int build(scmp_filter_ctx ctx) {
    int rc;
    for (int i = 0; i < COUNT(denied); i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0) return rc;
    }
    if ((rc = add_personality(ctx)) < 0) return rc;
    if ((rc = add_bpf(ctx)) < 0) return rc;
    // No new user namespaces: a QEMU taken over by its guest runs unprivileged, and a user
    // namespace would hand it every capability over its own namespaces, and with them the
    // kernel's least-tested code. The shim needs none (it is root already). clone3 passes its
    // flags in memory a filter cannot read: ENOSYS makes glibc fall back to clone.
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))) < 0)
        return rc;
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))) < 0)
        return rc;
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0) return rc;
    return 0;
}

int ks_process_filter_install(void) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) return -ENOMEM;
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0) rc = build(ctx);
    if (rc == 0) rc = seccomp_load(ctx);  // sets no_new_privs first (libseccomp's default)
    seccomp_release(ctx);
    return rc < 0 ? rc : 0;
}

int ks_process_filter_denied_count(void) {
    return COUNT(denied) + 5;  // + personality, bpf, unshare, clone (their flags), clone3
}

int ks_process_limit_capabilities(uint64_t keep) {
    // Every capability the kernel knows but `keep`, CAP_SETPCAP last (dropping needs it). One
    // already gone is skipped, so a second call (the daemon after `start`) succeeds.
    for (int cap = 0; cap < 64; cap++) {
        if (cap == CAP_SETPCAP || ((keep >> cap) & 1)) continue;
        int held = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (held < 0) break;  // beyond the kernel's last
        if (held && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return -errno;
    }
    if (!((keep >> CAP_SETPCAP) & 1) && prctl(PR_CAPBSET_READ, CAP_SETPCAP, 0, 0, 0) == 1 &&
        prctl(PR_CAPBSET_DROP, CAP_SETPCAP, 0, 0, 0) != 0)
        return -errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -errno;
    for (int i = 0; i < 2; i++) {
        uint32_t mask = (uint32_t)(keep >> (32 * i));
        data[i].effective &= mask;
        data[i].permitted &= mask;
        data[i].inheritable = 0;
    }
    return syscall(SYS_capset, &header, data) == 0 ? 0 : -errno;
}

int ks_process_filter_probe(long nr, long a0, long a1, long a2) {
    pid_t child = fork();
    if (child < 0) return -errno;
    if (child == 0) {
        if (ks_process_filter_install() != 0) _exit(100);
        long r = syscall(nr, a0, a1, a2, 0, 0, 0);
        _exit(r >= 0 ? 0 : errno == EPERM ? 101 : errno == ENOSYS ? 102 : 103);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) return -errno;
    }
    return status;
}
