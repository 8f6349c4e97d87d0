/*
 * net-check: /init for the virtio-net end-to-end test. Brings eth0 up as 10.199.1.2/24, sends a
 * UDP datagram to 10.199.1.1 port 9 (the host side: a tap in a namespace with that address and
 * nothing listening) and waits for the answer the host's kernel must give: ICMP port
 * unreachable, which a connected UDP socket reports as ECONNREFUSED. That needs an ARP round
 * trip and a UDP/ICMP round trip through the device. Prints one "net: " line, then reboots.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int console = 1;

static void say(const char *text) {
    char line[256];
    int n = snprintf(line, sizeof line, "net: %s\n", text);
    (void)!write(console, line, (size_t)n);
}

static int set_address(int s, unsigned long request, const char *address) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "eth0", IFNAMSIZ - 1);
    struct sockaddr_in *in = (struct sockaddr_in *)&ifr.ifr_addr;
    in->sin_family = AF_INET;
    inet_pton(AF_INET, address, &in->sin_addr);
    return ioctl(s, request, &ifr);
}

static const char *check(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) return "socket failed";
    if (set_address(s, SIOCSIFADDR, "10.199.1.2") < 0) return "SIOCSIFADDR failed";
    if (set_address(s, SIOCSIFNETMASK, "255.255.255.0") < 0) return "SIOCSIFNETMASK failed";
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "eth0", IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) return "SIOCGIFFLAGS failed";
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) return "SIOCSIFFLAGS failed";
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "10.199.1.1", &peer.sin_addr);
    if (connect(s, (struct sockaddr *)&peer, sizeof peer) < 0) return "connect failed";
    struct timeval timeout = {.tv_sec = 2};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    for (int attempt = 0; attempt < 10; attempt++) {
        (void)!send(s, "ping", 4, 0);
        char buffer[16];
        if (recv(s, buffer, sizeof buffer, 0) < 0 && errno == ECONNREFUSED) return "ok";
    }
    return "no answer";
}

int main(void) {
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY);
    if (fd >= 0) console = fd;
    say(check());
    sync();
    reboot(RB_AUTOBOOT);
    return 0;
}
