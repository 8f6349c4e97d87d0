// ks_portfwd: see include/ks_portfwd.h.
#define _GNU_SOURCE
#include "ks_portfwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int bpf_call(int cmd, union bpf_attr *attr) {
    long rc = syscall(__NR_bpf, cmd, attr, sizeof(*attr));
    return rc < 0 ? -errno : (int)rc;
}

int ks_portfwd_listen_loopback(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

// BPF instruction builders (the kernel's own macros live in its tools/, not in the uapi).
#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define MOV64_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADD64_IMM(d, i) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define LDX_W(d, s, o) INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, o, 0)
#define ST_W(d, o, i) INSN(BPF_ST | BPF_MEM | BPF_W, d, 0, o, i)
#define JNE_IMM(d, i, o) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define JEQ_IMM(d, i, o) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

int ks_portfwd_attach(int netns_fd, int listener_fd) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_SOCKMAP;
    attr.key_size = 4;
    attr.value_size = 8;
    attr.max_entries = 1;
    int map = bpf_call(BPF_MAP_CREATE, &attr);
    if (map < 0) return map;

    uint32_t key = 0;
    uint64_t value = (uint64_t)listener_fd;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)map;
    attr.key = (uint64_t)(uintptr_t)&key;
    attr.value = (uint64_t)(uintptr_t)&value;
    attr.flags = BPF_ANY;
    int rc = bpf_call(BPF_MAP_UPDATE_ELEM, &attr);
    if (rc < 0) {
        close(map);
        return rc;
    }

    // r6 = ctx; pass unless family == AF_INET, protocol == TCP, local_ip4 == 127.0.0.1;
    // sk = map[0]; bpf_sk_assign(ctx, sk, 0); bpf_sk_release(sk); return SK_PASS.
    const int32_t loopback = (int32_t)htonl(INADDR_LOOPBACK);
    struct bpf_insn program[] = {
        /* 0 */ MOV64_REG(BPF_REG_6, BPF_REG_1),
        /* 1 */ LDX_W(BPF_REG_2, BPF_REG_6, offsetof(struct bpf_sk_lookup, family)),
        /* 2 */ JNE_IMM(BPF_REG_2, AF_INET, 18),
        /* 3 */ LDX_W(BPF_REG_2, BPF_REG_6, offsetof(struct bpf_sk_lookup, protocol)),
        /* 4 */ JNE_IMM(BPF_REG_2, IPPROTO_TCP, 16),
        /* 5 */ LDX_W(BPF_REG_2, BPF_REG_6, offsetof(struct bpf_sk_lookup, local_ip4)),
        /* 6 */ JNE_IMM(BPF_REG_2, loopback, 14),
        /* 7 */ ST_W(BPF_REG_10, -4, 0),
        /* 8 */ INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map),
        /* 9 */ INSN(0, 0, 0, 0, 0),
        /* 10 */ MOV64_REG(BPF_REG_2, BPF_REG_10),
        /* 11 */ ADD64_IMM(BPF_REG_2, -4),
        /* 12 */ CALL(BPF_FUNC_map_lookup_elem),
        /* 13 */ JEQ_IMM(BPF_REG_0, 0, 7),
        /* 14 */ MOV64_REG(BPF_REG_7, BPF_REG_0),
        /* 15 */ MOV64_REG(BPF_REG_1, BPF_REG_6),
        /* 16 */ MOV64_REG(BPF_REG_2, BPF_REG_7),
        /* 17 */ MOV64_IMM(BPF_REG_3, 0),
        /* 18 */ CALL(BPF_FUNC_sk_assign),
        /* 19 */ MOV64_REG(BPF_REG_1, BPF_REG_7),
        /* 20 */ CALL(BPF_FUNC_sk_release),
        /* 21 */ MOV64_IMM(BPF_REG_0, SK_PASS),
        /* 22 */ EXIT(),
    };
    static const char license[] = "Dual MIT/GPL";
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_SK_LOOKUP;
    attr.expected_attach_type = BPF_SK_LOOKUP;
    attr.insns = (uint64_t)(uintptr_t)program;
    attr.insn_cnt = sizeof(program) / sizeof(program[0]);
    attr.license = (uint64_t)(uintptr_t)license;
    int prog = bpf_call(BPF_PROG_LOAD, &attr);
    close(map);  // the program holds the map
    if (prog < 0) return prog;

    memset(&attr, 0, sizeof(attr));
    attr.link_create.prog_fd = (uint32_t)prog;
    attr.link_create.target_fd = (uint32_t)netns_fd;
    attr.link_create.attach_type = BPF_SK_LOOKUP;
    int link = bpf_call(BPF_LINK_CREATE, &attr);
    close(prog);  // the link holds the program
    if (link < 0) return link;
    if (fcntl(link, F_SETFD, FD_CLOEXEC) != 0) {
        int e = errno;
        close(link);
        return -e;
    }
    return link;
}

int ks_portfwd_local_port(int fd) {
    struct sockaddr_storage address;
    socklen_t length = sizeof(address);
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0) return -errno;
    if (address.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&address)->sin_port);
    if (address.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
    return -EAFNOSUPPORT;
}

int ks_portfwd_dial_loopback(int family, uint16_t port) {
    int fd;
    int rc;
    if (family == 6) {
        fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -errno;
        struct sockaddr_in6 address = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        rc = connect(fd, (struct sockaddr *)&address, sizeof(address));
    } else {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -errno;
        struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        rc = connect(fd, (struct sockaddr *)&address, sizeof(address));
    }
    if (rc != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

struct direction {
    int from, to;
    size_t length, offset;
    int eof;   // `from` reached end of file
    int done;  // everything read was written and `to` was shut down for writing
    char buffer[64 * 1024];
};

// One step of a direction after poll: read when the buffer is empty, write what is pending.
// 0, or -errno on a hard error.
static int step(struct direction *d, short from_events, short to_events) {
    if (d->done) return 0;
    if (d->length == 0 && !d->eof && (from_events & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = recv(d->from, d->buffer, sizeof(d->buffer), 0);
        if (n > 0) {
            d->length = (size_t)n;
            d->offset = 0;
        } else if (n == 0) {
            d->eof = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            return -errno;
        }
    }
    if (d->length > 0 && (to_events & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = send(d->to, d->buffer + d->offset, d->length, MSG_NOSIGNAL);
        if (n >= 0) {
            d->offset += (size_t)n;
            d->length -= (size_t)n;
        } else if (errno != EAGAIN && errno != EINTR) {
            return -errno;
        }
    }
    if (d->eof && d->length == 0) {
        shutdown(d->to, SHUT_WR);
        d->done = 1;
    }
    return 0;
}

int ks_relay(int a, int b, int stop_fd) {
    for (int i = 0; i < 2; i++) {
        int fd = i == 0 ? a : b;
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return -errno;
    }
    struct direction *both = calloc(2, sizeof(struct direction));
    if (both == NULL) return -ENOMEM;
    struct direction *ab = &both[0], *ba = &both[1];
    ab->from = a; ab->to = b;
    ba->from = b; ba->to = a;
    int rc = 0;
    while (!(ab->done && ba->done)) {
        struct pollfd fds[3] = {{.fd = a}, {.fd = b}, {.fd = stop_fd, .events = POLLIN}};
        // a: readable for a->b when its buffer is empty; writable for b->a when it holds data.
        if (!ab->done && ab->length == 0 && !ab->eof) fds[0].events |= POLLIN;
        if (!ba->done && ba->length > 0) fds[0].events |= POLLOUT;
        if (!ba->done && ba->length == 0 && !ba->eof) fds[1].events |= POLLIN;
        if (!ab->done && ab->length > 0) fds[1].events |= POLLOUT;
        if (poll(fds, stop_fd >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR) continue;
            rc = -errno;
            break;
        }
        if (stop_fd >= 0 && fds[2].revents) break;
        rc = step(ab, fds[0].revents, fds[1].revents);
        if (rc == 0) rc = step(ba, fds[1].revents, fds[0].revents);
        if (rc == -EPIPE || rc == -ECONNRESET) {  // the other side went away: done
            rc = 0;
            break;
        }
        if (rc < 0) break;
        // A socket that hung up or was reset, with all its input passed on, takes nothing more.
        if (((fds[0].revents & (POLLHUP | POLLERR)) && ab->done) || ((fds[1].revents & (POLLHUP | POLLERR)) && ba->done)) break;
    }
    free(both);
    return rc;
}
