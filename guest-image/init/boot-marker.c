/*
 * boot-marker: the smallest useful /init for bring-up and boot benchmarks.
 *
 * Prints a marker line on the console, tells the VMM's boot timer that userspace was reached
 * (one byte to I/O port 0x80... see docs/vmm.md for the port the VMM listens on), then reboots.
 * With reboot=t the kernel ends in a triple fault, which the VMM sees as a clean shutdown exit.
 * Static, no libc beyond syscalls, so it runs before anything is mounted.
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
