// See ks_reaper.h.
#include "ks_reaper.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

pid_t ks_reaper_peek_exited(void) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r;
    do { r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    return si.si_pid;
}

int ks_reaper_reap(pid_t pid, int *exit_code) {
    int status = 0;
    pid_t r;
    do { r = waitpid(pid, &status, WNOHANG | __WALL); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (r == 0) return 0;
    if (WIFEXITED(status)) *exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) *exit_code = 128 + WTERMSIG(status);
    else *exit_code = 255;
    return 1;
}
