// ks_reaper: the agent's zombie reaper, sharing the children with the container engine.
//
// Why C: siginfo_t's si_pid/si_status live in a union Swift imports awkwardly, and the W* status
// macros are function-like macros. Every function returns -errno on failure.
#ifndef KATA_SWIFT_KS_REAPER_H
#define KATA_SWIFT_KS_REAPER_H

#include <sys/types.h>

/// waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT): the pid of a child that has exited, left unreaped;
/// 0 when none has exited; -ECHILD without children; other -errno.
pid_t ks_reaper_peek_exited(void);

/// waitpid(pid, WNOHANG): 1 and its exit code (0-255, or 128+signal) in *exit_code when reaped,
/// 0 when it has not exited, -errno (-ECHILD: someone else reaped it).
int ks_reaper_reap(pid_t pid, int *exit_code);

#endif
