/*
 * boot-marker: the smallest useful /init for bring-up and boot benchmarks.
 *
 * Prints a marker line on the console (what tests and `make demo` look for), then reboots. With
 * reboot=k the kernel resets through the i8042, with reboot=t by a triple fault: either way the
 * VMM sees the guest end cleanly. Static and tiny, so it runs before anything is mounted.
 */
#include <fcntl.h>
#include <sys/io.h>
#include <sys/reboot.h>
#include <unistd.h>

#define MARKER "kata-swift: init reached userspace\n"

int main(void) {
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY);
    if (fd < 0) fd = 1;
    (void)!write(fd, MARKER, sizeof(MARKER) - 1);
    sync();
    reboot(RB_AUTOBOOT);
    return 0;
}
