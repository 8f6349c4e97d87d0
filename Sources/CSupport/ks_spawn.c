// See include/ks_spawn.h.
#define _GNU_SOURCE
#include "ks_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { KS_MAX_SPAWN_FDS = 16, KS_HIGH_FD_BASE = 100 };

int ks_spawn(const char *path, char *const argv[], char *const envp[], const int *fd_map, int fd_count,
             int new_process_group, pid_t *pid) {
    if (fd_count < 0 || fd_count > KS_MAX_SPAWN_FDS) return -EINVAL;
    // Move every source above the target range first, so dup2(source, i) never clobbers a source
    // that a later target still needs.
    int high[KS_MAX_SPAWN_FDS];
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) return -errno;
    int rc = 0;
    int moved = 0;
    for (; moved < fd_count; moved++) {
        int source = fd_map[moved] >= 0 ? fd_map[moved] : devnull;
        high[moved] = fcntl(source, F_DUPFD_CLOEXEC, KS_HIGH_FD_BASE);
        if (high[moved] < 0) {
            rc = -errno;
            break;
        }
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int have_actions = 0, have_attributes = 0;
    if (rc == 0) {
        rc = -posix_spawn_file_actions_init(&actions);
        have_actions = rc == 0;
    }
    for (int i = 0; rc == 0 && i < fd_count; i++) rc = -posix_spawn_file_actions_adddup2(&actions, high[i], i);
    if (rc == 0) rc = -posix_spawn_file_actions_addclosefrom_np(&actions, fd_count);
    if (rc == 0) {
        rc = -posix_spawnattr_init(&attributes);
        have_attributes = rc == 0;
    }
    if (rc == 0) {
        sigset_t empty, all;
        sigemptyset(&empty);
        sigfillset(&all);
        sigdelset(&all, SIGKILL);
        sigdelset(&all, SIGSTOP);
        short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
        if (new_process_group) flags |= POSIX_SPAWN_SETPGROUP;
        rc = -posix_spawnattr_setflags(&attributes, flags);
        if (rc == 0) rc = -posix_spawnattr_setsigmask(&attributes, &empty);
        if (rc == 0) rc = -posix_spawnattr_setsigdefault(&attributes, &all);
        if (rc == 0 && new_process_group) rc = -posix_spawnattr_setpgroup(&attributes, 0);
    }
    if (rc == 0) rc = -posix_spawn(pid, path, &actions, &attributes, argv, envp);
    if (have_attributes) posix_spawnattr_destroy(&attributes);
    if (have_actions) posix_spawn_file_actions_destroy(&actions);
    for (int i = 0; i < moved; i++) close(high[i]);
    close(devnull);
    return rc;
}
