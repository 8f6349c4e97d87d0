/*
 * vsock-echo: a test /init standing in for kata-agent in the hypervisor tests.
 *
 * - Listens on AF_VSOCK port 1024 and echoes every byte back, one child process per connection.
 * - A connection to port 1025 reboots the guest (with reboot=t and QEMU's -no-reboot, QEMU exits):
 *   the clean-stop path the agent will offer.
 * - With KS_DIAL=<port> in the environment (an unknown kernel argument reaches init's environment),
 *   it also connects to the host (CID 2) on that port, sends "hello from guest\n" and then echoes
 *   on that connection too: a guest-initiated connection.
 * - Prints "vsock-echo: listening" on the console once the listener is up (tests wait for it).
 * Static, libc only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static void say(const char *text) {
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY);
    if (fd < 0) fd = 2;
    (void)!write(fd, text, strlen(text));
    if (fd > 2) close(fd);
}

static void echo(int fd) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return;
            off += w;
        }
    }
}

static int listen_on(unsigned port) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 16) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void dial(unsigned port) {
    if (fork() != 0) return;
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        say("vsock-echo: dial failed\n");
        _exit(1);
    }
    static const char hello[] = "hello from guest\n";
    (void)!write(fd, hello, sizeof hello - 1);
    echo(fd);
    _exit(0);
}

int main(void) {
    mount("proc", "/proc", "proc", 0, NULL);
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    int echo_fd = listen_on(1024);
    int stop_fd = listen_on(1025);
    if (echo_fd < 0 || stop_fd < 0) {
        say("vsock-echo: listen failed\n");
        reboot(RB_AUTOBOOT);
    }
    say("vsock-echo: listening\n");
    const char *dial_port = getenv("KS_DIAL");
    if (dial_port) dial((unsigned)strtoul(dial_port, NULL, 10));
    if (fork() == 0) {
        int c = accept(stop_fd, NULL, NULL);
        (void)c;
        say("vsock-echo: stop requested\n");
        sync();
        reboot(RB_AUTOBOOT);
        _exit(0);
    }
    for (;;) {
        int c = accept4(echo_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        if (fork() == 0) {
            echo(c);
            _exit(0);
        }
        close(c);
    }
}
