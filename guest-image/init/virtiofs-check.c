/*
 * virtiofs-check: a test /init for the virtio-fs tests and benchmark (QEMU backend, our FUSE
 * server behind vhost-user-fs-device).
 *
 * As /init (pid 1), with kernel arguments reaching its environment:
 *   KS_TAG=<tag>   the virtio-fs tag to mount on /mnt (default kataShared)
 *   KS_BENCH=<MiB> also run the benchmark below on /mnt/bench with a file of that size
 * it mounts the share and prints one "vfs: ..." line per check on the console:
 *   vfs: mounted                         mount -t virtiofs <tag> /mnt worked
 *   vfs: read <text>                     the first line of /mnt/host.txt (written by the host)
 *   vfs: wrote guest.txt                 /mnt/guest.txt written and fsynced
 *   vfs: list <a,b,c>                    sorted entries of /mnt/dir
 *   vfs: readlink <target>               the text of the symlink /mnt/rootfs/abs
 *   vfs: chroot-etc <text>               /abs/marker read after chroot("/mnt/rootfs"): the share's etc
 *   vfs: host-passwd <errno name>        /abs/passwd after the chroot (the host's /etc is not there)
 *   vfs: bench ...                       benchmark results (see below)
 *   vfs: done                            then it reboots (reboot=t + QEMU -no-reboot ends QEMU)
 * Any failure prints "vfs: FAIL <what>: <strerror>" and reboots.
 *
 * On the host: `virtiofs-check bench DIR MiB FILES` runs the same benchmark in DIR.
 * Benchmark: sequential write of MiB MiB in 1 MiB writes + fsync, sequential read of it back
 * (in the guest after dropping the guest's page cache), then FILES small files: create (open
 * O_CREAT + 100-byte write + close), stat each, unlink each. Prints
 *   vfs: bench write <MB/s> read <MB/s> create <ops/s> stat <ops/s> delete <ops/s>
 * Static, libc only.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int fd = getpid() == 1 ? open("/dev/console", O_WRONLY | O_NOCTTY) : -1;
    if (fd < 0) fd = 1;
    (void)!write(fd, line, strlen(line));
    if (fd > 2) close(fd);
}

static void finish(void) {
    sync();
    if (getpid() == 1) {
        reboot(RB_AUTOBOOT);
        for (;;) pause();
    }
}

static int failed(const char *what) {
    say("vfs: FAIL %s: %s\n", what, strerror(errno));
    finish();
    return 1;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int drop_caches(void) {
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0) return -1;
    int ok = write(fd, "3\n", 2) == 2;
    close(fd);
    return ok ? 0 : -1;
}

static int bench(const char *dir, long mib, long files, int in_guest) {
    char path[512];
    static char block[1 << 20];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (char)(i * 7 + 1);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) return failed("bench mkdir");
    snprintf(path, sizeof path, "%s/big", dir);

    double t0 = now();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return failed("bench create big");
    for (long i = 0; i < mib; i++) {
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block) return failed("bench write");
    }
    if (fsync(fd) < 0) return failed("bench fsync");
    close(fd);
    double write_s = now() - t0;

    if (in_guest) sync(), drop_caches();
    t0 = now();
    fd = open(path, O_RDONLY);
    if (fd < 0) return failed("bench open big");
    long total = 0;
    for (;;) {
        ssize_t n = read(fd, block, sizeof block);
        if (n < 0) return failed("bench read");
        if (n == 0) break;
        total += n;
    }
    close(fd);
    double read_s = now() - t0;
    if (total != mib << 20) {
        errno = EIO;
        return failed("bench read size");
    }
    unlink(path);

    t0 = now();
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/f%05ld", dir, i);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 || write(fd, block, 100) != 100) return failed("bench small create");
        close(fd);
    }
    double create_s = now() - t0;
    if (in_guest) drop_caches();
    t0 = now();
    for (long i = 0; i < files; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/f%05ld", dir, i);
        if (stat(path, &st) < 0 || st.st_size != 100) return failed("bench small stat");
    }
    double stat_s = now() - t0;
    t0 = now();
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/f%05ld", dir, i);
        if (unlink(path) < 0) return failed("bench small unlink");
    }
    double delete_s = now() - t0;
    rmdir(dir);
    say("vfs: bench write %.1f read %.1f create %.0f stat %.0f delete %.0f\n", (double)mib * 1.048576 / write_s,
        (double)mib * 1.048576 / read_s, (double)files / create_s, (double)files / stat_s, (double)files / delete_s);
    return 0;
}

static int compare(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "bench") == 0) return bench(argv[2], atol(argv[3]), atol(argv[4]), 0);

    const char *tag = getenv("KS_TAG") ? getenv("KS_TAG") : "kataShared";
    mount("proc", "/proc", "proc", 0, NULL);
    mkdir("/mnt", 0755);
    if (mount(tag, "/mnt", "virtiofs", 0, NULL) < 0) return failed("mount virtiofs");
    say("vfs: mounted\n");

    char buf[256] = {0};
    int fd = open("/mnt/host.txt", O_RDONLY);
    if (fd < 0) return failed("open host.txt");
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) return failed("read host.txt");
    buf[strcspn(buf, "\n")] = 0;
    say("vfs: read %s\n", buf);

    fd = open("/mnt/guest.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const char *text = "written by the guest\n";
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) < 0) return failed("write guest.txt");
    close(fd);
    say("vfs: wrote guest.txt\n");

    DIR *d = opendir("/mnt/dir");
    if (!d) return failed("opendir dir");
    char *names[64];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 64) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[count++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof names[0], compare);
    char list[512] = {0};
    for (int i = 0; i < count; i++) {
        if (i) strcat(list, ",");
        strncat(list, names[i], sizeof list - strlen(list) - 2);
    }
    say("vfs: list %s\n", list);

    char target[256] = {0};
    if (readlink("/mnt/rootfs/abs", target, sizeof target - 1) < 0) return failed("readlink abs");
    say("vfs: readlink %s\n", target);

    const char *bench_mib = getenv("KS_BENCH");
    if (bench_mib && bench(
        "/mnt/bench", atol(bench_mib), getenv("KS_FILES") ? atol(getenv("KS_FILES")) : 2000, 1) != 0) return 1;

    if (chroot("/mnt/rootfs") < 0 || chdir("/") < 0) return failed("chroot rootfs");
    fd = open("/abs/marker", O_RDONLY);
    if (fd < 0) return failed("open /abs/marker");
    memset(buf, 0, sizeof buf);
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? strcspn(buf, "\n") : 0] = 0;
    say("vfs: chroot-etc %s\n", buf);
    fd = open("/abs/passwd", O_RDONLY);
    say("vfs: host-passwd %s\n", fd < 0 ? (errno == ENOENT ? "ENOENT" : strerror(errno)) : "VISIBLE");
    if (fd >= 0) close(fd);

    say("vfs: done\n");
    finish();
    return 0;
}
