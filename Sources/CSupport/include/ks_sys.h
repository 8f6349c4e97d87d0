// ks_sys: system calls whose C shape Swift cannot use directly.
//
// Why: struct epoll_event is packed on x86-64 (Swift would lay it out differently), prctl and
// ioctl are variadic, and a signal handler must be a plain C function for the vCPU "kick".
#ifndef KS_SYS_H
#define KS_SYS_H

#include <stdint.h>

/// O_PATH (Swift's Glibc does not export it): a descriptor that names a file without opening it.
extern const int ks_o_path;

/// eventfd(initval, EFD_CLOEXEC [| EFD_NONBLOCK]); sys/eventfd.h is not in Swift's Glibc module.
/// Returns the fd or -errno.
int ks_eventfd(unsigned int initval, int nonblocking);

/// epoll_create1(EPOLL_CLOEXEC); sys/epoll.h is not in Swift's Glibc module. fd or -errno.
int ks_epoll_create(void);

/// epoll_ctl with the event mask and the 64-bit token passed as plain arguments. 0 or -errno.
int ks_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);

/// epoll_wait into two parallel arrays. Returns the count, or -errno (-EINTR included).
int ks_epoll_wait(int epfd, uint32_t *events, uint64_t *tokens, int max, int timeout_ms);

/// Installs an empty handler for `signo` without SA_RESTART, so a blocking call in the
/// signalled thread (KVM_RUN) returns EINTR. 0 or -errno.
int ks_install_kick_handler(int signo);

/// Unblocks `signo` in the calling thread. 0 or -errno.
int ks_unblock_signal(int signo);

/// prctl(PR_SET_NAME): names the calling thread (visible in ps/top). 0 or -errno.
int ks_set_thread_name(const char *name);

/// pipe2(fds, O_CLOEXEC): both ends close-on-exec (pipe2 is a GNU extension Swift's Glibc module
/// does not show). 0 or -errno.
int ks_pipe_cloexec(int fds[2]);

/// pidfd_open(pid, 0): a descriptor that becomes readable when `pid` exits (close-on-exec).
/// The descriptor or -errno.
int ks_pidfd_open(int pid);

/// The first real-time signal number (SIGRTMIN is a function call in glibc, a macro in C).
int ks_sigrtmin(void);

/// malloc_trim(0): free pages anywhere in every arena go back to the kernel (malloc.h is not in
/// Swift's Glibc module). 1 if any did.
int ks_heap_trim(void);

#endif
