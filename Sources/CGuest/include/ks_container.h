// ks_container: everything between clone and execve for a container process (Sources/GuestContainers).
//
// Why C: the agent is multithreaded, so the child of a clone may only make async-signal-safe
// system calls; Swift code (allocation, locks, the runtime) must never run there. Swift lays out
// every string and array before the call; the child only reads that memory (its own copy after
// clone) and makes raw system calls. It talks to the parent over a SOCK_SEQPACKET socket pair:
// the parent sends one byte per barrier, the child answers with a ks_ctr_report.
//
// Also here: the libseccomp filter is built and exported as a BPF program in the PARENT, so the
// child only hands it to prctl(PR_SET_SECCOMP) as the last step before execve.
#ifndef KATA_SWIFT_KS_CONTAINER_H
#define KATA_SWIFT_KS_CONTAINER_H

#include <stdint.h>

/// The step of the child's setup that failed; ks_ctr_step_name gives the text.
enum ks_ctr_step {
    KS_CTR_STEP_NONE = 0,
    KS_CTR_STEP_SYNC,
    KS_CTR_STEP_SETNS,
    KS_CTR_STEP_CLONE,
    KS_CTR_STEP_SETSID,
    KS_CTR_STEP_CTTY,
    KS_CTR_STEP_STDIO,
    KS_CTR_STEP_MOUNT_PRIVATE,
    KS_CTR_STEP_ROOTFS_BIND,
    KS_CTR_STEP_MKDIR,
    KS_CTR_STEP_MOUNT,
    KS_CTR_STEP_MOUNT_REMOUNT,
    KS_CTR_STEP_MOUNT_PROPAGATION,
    KS_CTR_STEP_DEV_NODE,
    KS_CTR_STEP_DEV_LINK,
    KS_CTR_STEP_PIVOT_ROOT,
    KS_CTR_STEP_UMOUNT_OLD_ROOT,
    KS_CTR_STEP_MASK_PATH,
    KS_CTR_STEP_READONLY_PATH,
    KS_CTR_STEP_ROOT_READONLY,
    KS_CTR_STEP_HOSTNAME,
    KS_CTR_STEP_RLIMIT,
    KS_CTR_STEP_UMASK,
    KS_CTR_STEP_BOUNDING_SET,
    KS_CTR_STEP_KEEPCAPS,
    KS_CTR_STEP_SETGROUPS,
    KS_CTR_STEP_SETGID,
    KS_CTR_STEP_SETUID,
    KS_CTR_STEP_CAPSET,
    KS_CTR_STEP_AMBIENT,
    KS_CTR_STEP_NO_NEW_PRIVS,
    KS_CTR_STEP_CHDIR,
    KS_CTR_STEP_SECCOMP,
    KS_CTR_STEP_EXEC,
};

/// "pivot_root", "mount", ... for a ks_ctr_step value.
const char *ks_ctr_step_name(int step);

/// One mount, target already joined with the rootfs path by the caller.
struct ks_ctr_mount {
    const char *source;
    const char *target;
    const char *fstype;       // NULL for a bind mount
    const char *data;         // fs-specific options joined by ',' (NULL: none)
    unsigned long flags;      // MS_RDONLY, MS_NOSUID, ... (not MS_BIND/MS_REC)
    unsigned long propagation; // 0 or one of MS_PRIVATE/MS_SLAVE/MS_SHARED/MS_UNBINDABLE (| MS_REC)
    int bind;                 // 1: bind mount (then remounted with `flags` if any)
    int recursive;            // 1: MS_REC with bind
};

struct ks_ctr_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

/// Everything the child does, laid out by the caller. Pointers must stay valid during ks_ctr_spawn.
struct ks_ctr_config {
    uint64_t clone_flags;            // CLONE_NEW* for a new container (0 for an exec)
    int into_cgroup;                 // 1: the child starts in the cgroup v2 directory `cgroup_fd`
    int cgroup_fd;                   // (clone3's CLONE_INTO_CGROUP: no migration afterwards)
    const int *ns_fds;               // namespaces joined first, in order: an exec joins the init
                                     // process's; a pod's container its sandbox's ipc, uts (pid)
    int ns_count;

    const char *rootfs;              // NULL: no file-system setup (exec into a container)
    const struct ks_ctr_mount *mounts;
    int mount_count;
    int setup_dev;                   // bind null, zero, full, random, urandom, tty from /dev
    const char *const *masked_paths;
    int masked_count;
    const char *const *readonly_paths;
    int readonly_count;
    int root_readonly;
    const char *hostname;            // NULL: leave

    const struct ks_ctr_rlimit *rlimits;
    int rlimit_count;
    uint32_t uid;
    uint32_t gid;
    const uint32_t *groups;
    int group_count;
    int umask_value;                 // -1: leave
    int set_caps;                    // 0: leave capabilities as setuid leaves them
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    int cap_last;                    // highest capability number the kernel knows
    int no_new_privs;
    const void *seccomp_prog;        // struct sock_filter[seccomp_insns], or NULL
    int seccomp_insns;

    const char *cwd;
    const char *const *argv;         // NULL-terminated
    const char *const *envp;         // NULL-terminated
    const char *path_env;            // PATH used to look argv[0] up (NULL: a default)

    int stdin_fd, stdout_fd, stderr_fd; // when !terminal; a negative fd means /dev/null
    int terminal;                    // 1: a pty from the container's /dev/ptmx (after the mounts, or
                                     // after setns for an exec); its slave becomes the controlling
                                     // terminal and fds 0-2, its master goes to the parent
};

/// What the child reported when a step failed.
struct ks_ctr_failure {
    int32_t step;   // enum ks_ctr_step
    int32_t err;    // errno
    int32_t index;  // which mount / path / rlimit (-1: not applicable)
};

/// A cloned child waiting at a barrier.
struct ks_ctr_child {
    int pid;        // in the caller's pid namespace
    int pidfd;      // pidfd_open(pid), for signals and waitid without pid reuse races
    int control_fd; // parent end of the socket pair
    int pty_master; // the terminal's master once the child sent it (-1: none); owned by the caller
};

/// Clones the child (for an exec: an intermediate child joins the namespaces and clones the
/// real child with CLONE_PARENT, so it is our child too). The child waits at the first barrier.
/// Returns 0; -errno for a failure in the parent; -EPROTO when the child reported `failure`.
int ks_ctr_spawn(const struct ks_ctr_config *cfg, struct ks_ctr_child *child, struct ks_ctr_failure *failure);

/// Releases the child from its current barrier and waits for its next report.
/// Returns 1 when the child is ready (set up, waiting for start), 0 when the socket closed
/// (execve succeeded, or the child died), -EPROTO with `failure` filled, or -errno.
int ks_ctr_advance(struct ks_ctr_child *child, struct ks_ctr_failure *failure);

/// Kills (SIGKILL) and reaps the child, closes its descriptors (pty master included). For error paths.
void ks_ctr_abort(struct ks_ctr_child *child);

/// pidfd_send_signal. 0 or -errno.
int ks_ctr_signal(int pidfd, int signo);

/// waitid(P_PIDFD) for exit; *status is the exit code or 128+signal. 0 or -errno.
/// With nohang=1 returns -EAGAIN while the process runs.
int ks_ctr_wait(int pidfd, int nohang, int *status);

/// Sets the window size of a terminal. 0 or -errno.
int ks_ctr_set_winsize(int fd, uint16_t rows, uint16_t cols);

/// Opens a namespace file for setns, checking it is a namespace of `type` (ipc, uts, pid, mnt).
/// fd, -EINVAL when it is not, or -errno.
int ks_ctr_open_ns_path(const char *path, const char *type);

/// Opens /proc/<pid>/ns/<name> O_RDONLY|O_CLOEXEC. fd or -errno.
int ks_ctr_open_ns(int pid, const char *name);

/// CLONE_NEW* values (the Glibc module does not import them).
extern const uint64_t ks_ctr_clone_newns, ks_ctr_clone_newpid, ks_ctr_clone_newuts, ks_ctr_clone_newipc,
    ks_ctr_clone_newnet, ks_ctr_clone_newcgroup, ks_ctr_clone_newuser;

// ---- seccomp (libseccomp, parent side)

struct ks_seccomp_arg {
    uint32_t index;
    uint32_t op;        // enum scmp_compare (1 NE ... 7 MASKED_EQ)
    uint64_t value;
    uint64_t value_two;
};

struct ks_seccomp_rule {
    const char *name;   // syscall name; names this libseccomp does not know are skipped
    uint32_t action;    // SCMP_ACT_* value
    const struct ks_seccomp_arg *args;
    int arg_count;
};

/// Builds a filter and exports it as a BPF program into *prog (malloc'd; free() it),
/// *insns instructions. archs: libseccomp names ("x86_64", "x86", "x32"...).
/// Returns 0 or -errno; *bad_arch / *bad_rule name the offending entry (-1: none).
int ks_seccomp_export(uint32_t default_action, const char *const *archs, int arch_count,
                      const struct ks_seccomp_rule *rules, int rule_count,
                      void **prog, int *insns, int *bad_arch, int *bad_rule);

#endif
