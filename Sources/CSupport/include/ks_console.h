// ks_console: the debug console. The agent side spawns a shell on a new pty per connection
// (Sources/Agent/DebugConsole*.swift); the host side (`kata-ctl exec`) puts the local terminal in
// raw mode and must restore it on every way out, signals included.
//
// Why C: the agent is multithreaded, so between clone and execve the child may only make
// async-signal-safe calls and Swift must never run there; clone3's CLONE_PIDFD and
// pidfd_send_signal have no wrappers in Swift's Glibc module; and restoring the terminal on a
// fatal signal happens in a signal handler. Every function returns -errno on failure and never
// leaves errno for Swift to read.
#ifndef KATA_SWIFT_KS_CONSOLE_H
#define KATA_SWIFT_KS_CONSOLE_H

#include <stdint.h>

/// A shell running on a pty.
struct ks_console_shell {
    /// Its pid (for logs only: use the pidfd, which cannot be confused by pid reuse).
    int pid;
    /// A pidfd from clone3(CLONE_PIDFD): polls readable once the process has exited. O_CLOEXEC.
    int pidfd;
    /// The pty master: O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK. Closing it hangs up the shell.
    int master;
};

/// Opens a new pty (window `rows` x `cols`) and starts `path` on it: the child becomes a session
/// leader with the pty as its controlling terminal and as stdin, stdout and stderr, runs in "/",
/// with an empty signal mask, every signal at its default disposition and no other descriptor
/// open. `argv` and `envp` are NULL-terminated. Returns 0 once the child has called execve
/// successfully; -errno of the failed step otherwise (the child's execve errno when the program
/// could not be run; the child is then already reaped and nothing is left open).
int ks_console_spawn(const char *path, char *const argv[], char *const envp[],
                     uint16_t rows, uint16_t cols, struct ks_console_shell *out);

/// A new pty pair (posix_openpt/unlockpt are hidden from Swift's Glibc module): *master and *slave
/// both O_RDWR | O_NOCTTY | O_CLOEXEC, window `rows` x `cols` (0 x 0: left as is). 0 or -errno.
int ks_console_openpty(uint16_t rows, uint16_t cols, int *master, int *slave);

/// pidfd_send_signal(pidfd, signo). 0, or -errno (-ESRCH once the process has exited and been reaped).
int ks_console_signal(int pidfd, int signo);

/// Reaps the process of `pidfd` (waitid P_PIDFD, WEXITED, WNOHANG). Returns 1 and stores its exit
/// code (0-255, or 128+signal) in *exit_code when it was reaped now; 0 while it still runs;
/// -ECHILD when someone else (the agent's reaper, waiting for any child) already reaped it.
int ks_console_reap(int pidfd, int *exit_code);

/// Puts terminal `fd` in raw mode (cfmakeraw) and remembers its previous settings; until
/// ks_console_tty_restore, SIGTERM, SIGHUP, SIGQUIT and SIGINT restore them before the process
/// dies of the signal (they are unblocked in the calling thread, whatever mask was inherited;
/// call it before starting other threads). Returns 0, or -errno (-ENOTTY when fd is not a terminal).
int ks_console_tty_raw(int fd);

/// Restores what ks_console_tty_raw saved (TCSAFLUSH is not used: nothing typed is dropped) and
/// puts the signal dispositions back. Idempotent; does nothing when the terminal is not raw.
void ks_console_tty_restore(void);

/// The window size of terminal `fd` into *rows, *cols. 0 or -errno.
int ks_console_tty_size(int fd, uint16_t *rows, uint16_t *cols);

#endif
