// getrandom(2) for the virtio-rng device. Glibc's Swift overlay does not import
// <sys/random.h>, so the call is wrapped here.
#ifndef KATA_SWIFT_KS_RANDOM_H
#define KATA_SWIFT_KS_RANDOM_H
#include <sys/types.h>
#include <sys/random.h>

/// Fills buf with up to len random bytes; returns the count or -1 with errno set.
static inline ssize_t ks_getrandom(void *buf, size_t len, unsigned int flags) {
    return getrandom(buf, len, flags);
}
#endif
