// ks_spawn: spawning a process with an exact descriptor layout (posix_spawn file actions plus
// closefrom, which glibc only declares under _GNU_SOURCE), so no Swift code runs in the child.
// SystemSupport's `Spawn.process` is its one Swift caller. Returns 0 on success and -errno on
// failure.
#ifndef KATA_SWIFT_KS_SPAWN_H
#define KATA_SWIFT_KS_SPAWN_H

#include <sys/types.h>

/// Spawns `path` with `argv`/`envp`, where child fd i is parent fd `fd_map[i]` (or /dev/null when
/// fd_map[i] < 0) for i < fd_count, and every other descriptor is closed. With `new_process_group`
/// the child leads its own process group. Signal mask and dispositions are reset to defaults.
/// Stores the child's pid in `*pid`.
int ks_spawn(const char *path, char *const argv[], char *const envp[], const int *fd_map, int fd_count,
             int new_process_group, pid_t *pid);

#endif
