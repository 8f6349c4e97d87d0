#include "ks_kvm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

const unsigned long KS_KVM_GET_API_VERSION = KVM_GET_API_VERSION;
const unsigned long KS_KVM_CREATE_VM = KVM_CREATE_VM;
const unsigned long KS_KVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
const unsigned long KS_KVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
const unsigned long KS_KVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
const unsigned long KS_KVM_CREATE_VCPU = KVM_CREATE_VCPU;
const unsigned long KS_KVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
const unsigned long KS_KVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
const unsigned long KS_KVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
const unsigned long KS_KVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
const unsigned long KS_KVM_CREATE_PIT2 = KVM_CREATE_PIT2;
const unsigned long KS_KVM_IRQ_LINE = KVM_IRQ_LINE;
const unsigned long KS_KVM_IRQFD = KVM_IRQFD;
const unsigned long KS_KVM_IOEVENTFD = KVM_IOEVENTFD;
const uint32_t KS_KVM_IOEVENTFD_FLAG_DATAMATCH = KVM_IOEVENTFD_FLAG_DATAMATCH;
const uint32_t KS_KVM_IOEVENTFD_FLAG_DEASSIGN = KVM_IOEVENTFD_FLAG_DEASSIGN;
const uint32_t KS_KVM_IRQFD_FLAG_DEASSIGN = KVM_IRQFD_FLAG_DEASSIGN;
const unsigned long KS_KVM_RUN = KVM_RUN;
const unsigned long KS_KVM_GET_REGS = KVM_GET_REGS;
const unsigned long KS_KVM_SET_REGS = KVM_SET_REGS;
const unsigned long KS_KVM_GET_SREGS = KVM_GET_SREGS;
const unsigned long KS_KVM_SET_SREGS = KVM_SET_SREGS;
const unsigned long KS_KVM_SET_FPU = KVM_SET_FPU;
const unsigned long KS_KVM_SET_LAPIC = KVM_SET_LAPIC;
const unsigned long KS_KVM_GET_LAPIC = KVM_GET_LAPIC;
const unsigned long KS_KVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
const unsigned long KS_KVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
const unsigned long KS_KVM_GET_MP_STATE = KVM_GET_MP_STATE;
const unsigned long KS_KVM_SET_MP_STATE = KVM_SET_MP_STATE;
const unsigned long KS_KVM_GET_XCRS = KVM_GET_XCRS;
const unsigned long KS_KVM_SET_XCRS = KVM_SET_XCRS;
const unsigned long KS_KVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
const unsigned long KS_KVM_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
const unsigned long KS_KVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
const unsigned long KS_KVM_SET_IRQCHIP = KVM_SET_IRQCHIP;
const unsigned long KS_KVM_GET_PIT2 = KVM_GET_PIT2;
const unsigned long KS_KVM_SET_PIT2 = KVM_SET_PIT2;
const unsigned long KS_KVM_GET_CLOCK = KVM_GET_CLOCK;
const unsigned long KS_KVM_SET_CLOCK = KVM_SET_CLOCK;

_Static_assert(sizeof(struct kvm_xsave) == KS_KVM_XSAVE_SIZE, "struct kvm_xsave's fixed part");

int ks_kvm_get_supported_cpuid(int kvm_fd, ks_cpuid_entry *out, int max) {
    if (max <= 0) return -EINVAL;
    size_t size = sizeof(struct kvm_cpuid2) + (size_t)max * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = calloc(1, size);
    if (!cpuid) return -ENOMEM;
    cpuid->nent = (uint32_t)max;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
        int err = errno;
        free(cpuid);
        return -err;
    }
    int n = (int)cpuid->nent;
    for (int i = 0; i < n; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        out[i] = (ks_cpuid_entry){e->function, e->index, e->flags, e->eax, e->ebx, e->ecx, e->edx};
    }
    free(cpuid);
    return n;
}

int ks_kvm_set_cpuid(int vcpu_fd, const ks_cpuid_entry *entries, int count) {
    if (count < 0) return -EINVAL;
    size_t size = sizeof(struct kvm_cpuid2) + (size_t)count * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = calloc(1, size);
    if (!cpuid) return -ENOMEM;
    cpuid->nent = (uint32_t)count;
    for (int i = 0; i < count; i++) {
        const ks_cpuid_entry *s = &entries[i];
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        e->function = s->function; e->index = s->index; e->flags = s->flags;
        e->eax = s->eax; e->ebx = s->ebx; e->ecx = s->ecx; e->edx = s->edx;
    }
    int rc = ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0 ? -errno : 0;
    free(cpuid);
    return rc;
}

int ks_kvm_set_msrs(int vcpu_fd, const uint32_t *indices, const uint64_t *values, int count) {
    if (count < 0) return -EINVAL;
    size_t size = sizeof(struct kvm_msrs) + (size_t)count * sizeof(struct kvm_msr_entry);
    struct kvm_msrs *msrs = calloc(1, size);
    if (!msrs) return -ENOMEM;
    msrs->nmsrs = (uint32_t)count;
    for (int i = 0; i < count; i++) {
        msrs->entries[i].index = indices[i];
        msrs->entries[i].data = values[i];
    }
    int rc = ioctl(vcpu_fd, KVM_SET_MSRS, msrs);
    if (rc < 0) rc = -errno;
    free(msrs);
    return rc;
}

int ks_kvm_msr_index_list(int kvm_fd, uint32_t *out, int max) {
    if (max <= 0) return -EINVAL;
    struct kvm_msr_list *list = calloc(1, sizeof(struct kvm_msr_list) + (size_t)max * sizeof(uint32_t));
    if (!list) return -ENOMEM;
    list->nmsrs = (uint32_t)max;
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
        int err = errno;
        free(list);
        return -err;
    }
    int n = (int)list->nmsrs;
    if (n > max) n = max;
    memcpy(out, list->indices, (size_t)n * sizeof(uint32_t));
    free(list);
    return n;
}

int ks_kvm_get_msrs(int vcpu_fd, const uint32_t *indices, uint64_t *values, int count) {
    if (count < 0) return -EINVAL;
    struct kvm_msrs *msrs = calloc(1, sizeof(struct kvm_msrs) + (size_t)count * sizeof(struct kvm_msr_entry));
    if (!msrs) return -ENOMEM;
    msrs->nmsrs = (uint32_t)count;
    for (int i = 0; i < count; i++) msrs->entries[i].index = indices[i];
    int n = ioctl(vcpu_fd, KVM_GET_MSRS, msrs);
    if (n < 0) {
        int err = errno;
        free(msrs);
        return -err;
    }
    if (n > count) n = count;
    for (int i = 0; i < n; i++) values[i] = msrs->entries[i].data;
    free(msrs);
    return n;
}

int ks_kvm_get_xsave(int vcpu_fd, uint8_t *out) {
    return ioctl(vcpu_fd, KVM_GET_XSAVE, (struct kvm_xsave *)(void *)out) < 0 ? -errno : 0;
}

int ks_kvm_set_xsave(int vcpu_fd, const uint8_t *in) {
    return ioctl(vcpu_fd, KVM_SET_XSAVE, (const struct kvm_xsave *)(const void *)in) < 0 ? -errno : 0;
}
