// Shim helpers Swift cannot express safely: Unix socket addresses (sockaddr_un), and spawning a
// process with an exact descriptor layout (posix_spawn file actions plus closefrom, which glibc
// only declares under _GNU_SOURCE). Every function returns 0 or a file descriptor on success and
// -errno on failure.
#ifndef KATA_SWIFT_KS_SHIM_H
#define KATA_SWIFT_KS_SHIM_H

#include <sys/types.h>

/// Creates a close-on-exec Unix stream socket listening on `path` (backlog 128). The socket file
/// is created with mode 0600: the socket is fchmod'ed before bind, and Linux gives the new file
/// the socket inode's mode (less the umask), so there is no moment at which others may connect.
/// -ENAMETOOLONG if `path` does not fit sockaddr_un.sun_path.
int ks_shim_unix_listen(const char *path);

/// Connects a close-on-exec Unix stream socket to `path`; returns the connected fd.
int ks_shim_unix_connect(const char *path);

/// Writes the filesystem path a bound Unix socket `fd` listens on into `buf` (NUL-terminated).
int ks_shim_unix_socket_path(int fd, char *buf, int buf_len);

/// A pipe whose both ends are close-on-exec.
int ks_shim_pipe_cloexec(int fds[2]);

/// Spawns `path` with `argv`/`envp`, where child fd i is parent fd `fd_map[i]` (or /dev/null when
/// fd_map[i] < 0) for i < fd_count, and every other descriptor is closed. With `new_process_group`
/// the child leads its own process group. Signal mask and dispositions are reset to defaults.
/// Stores the child's pid in `*pid`.
int ks_shim_spawn(const char *path, char *const argv[], char *const envp[], const int *fd_map, int fd_count,
                  int new_process_group, pid_t *pid);

#endif
