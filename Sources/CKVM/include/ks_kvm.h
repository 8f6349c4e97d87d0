// ks_kvm: KVM ioctl request numbers and the few KVM calls Swift cannot express.
//
// Why: request numbers built with _IO/_IOR/_IOW are not imported by Swift ("macro unavailable:
// structure not supported"), so they are exported here as constants. Structures with a flexible
// array member (kvm_cpuid2, kvm_msrs) are not usable from Swift, so those calls are done in C.
#ifndef KS_KVM_H
#define KS_KVM_H

#include <stdint.h>
#include <linux/kvm.h>

// System ioctls (on the /dev/kvm fd).
extern const unsigned long KS_KVM_GET_API_VERSION;
extern const unsigned long KS_KVM_CREATE_VM;
extern const unsigned long KS_KVM_CHECK_EXTENSION;
extern const unsigned long KS_KVM_GET_VCPU_MMAP_SIZE;
extern const unsigned long KS_KVM_GET_SUPPORTED_CPUID;
// VM ioctls.
extern const unsigned long KS_KVM_CREATE_VCPU;
extern const unsigned long KS_KVM_SET_USER_MEMORY_REGION;
extern const unsigned long KS_KVM_SET_TSS_ADDR;
extern const unsigned long KS_KVM_SET_IDENTITY_MAP_ADDR;
extern const unsigned long KS_KVM_CREATE_IRQCHIP;
extern const unsigned long KS_KVM_CREATE_PIT2;
extern const unsigned long KS_KVM_IRQ_LINE;
extern const unsigned long KS_KVM_IRQFD;
extern const unsigned long KS_KVM_IOEVENTFD;
// Flags of struct kvm_ioeventfd / kvm_irqfd (enum-derived macros Swift does not import).
extern const uint32_t KS_KVM_IOEVENTFD_FLAG_DATAMATCH;
extern const uint32_t KS_KVM_IOEVENTFD_FLAG_DEASSIGN;
extern const uint32_t KS_KVM_IRQFD_FLAG_DEASSIGN;
// vCPU ioctls.
extern const unsigned long KS_KVM_RUN;
extern const unsigned long KS_KVM_GET_REGS;
extern const unsigned long KS_KVM_SET_REGS;
extern const unsigned long KS_KVM_GET_SREGS;
extern const unsigned long KS_KVM_SET_SREGS;
extern const unsigned long KS_KVM_SET_FPU;
extern const unsigned long KS_KVM_SET_LAPIC;
extern const unsigned long KS_KVM_GET_LAPIC;
extern const unsigned long KS_KVM_GET_VCPU_EVENTS;
extern const unsigned long KS_KVM_SET_VCPU_EVENTS;
// Snapshot and restore: the rest of a vCPU's and a VM's state.
extern const unsigned long KS_KVM_GET_MP_STATE;
extern const unsigned long KS_KVM_SET_MP_STATE;
extern const unsigned long KS_KVM_GET_XCRS;
extern const unsigned long KS_KVM_SET_XCRS;
extern const unsigned long KS_KVM_GET_DEBUGREGS;
extern const unsigned long KS_KVM_SET_DEBUGREGS;
extern const unsigned long KS_KVM_GET_IRQCHIP;
extern const unsigned long KS_KVM_SET_IRQCHIP;
extern const unsigned long KS_KVM_GET_PIT2;
extern const unsigned long KS_KVM_SET_PIT2;
extern const unsigned long KS_KVM_GET_CLOCK;
extern const unsigned long KS_KVM_SET_CLOCK;
/// The size of struct kvm_xsave's fixed part (its flexible tail is for AMX, which we never expose).
#define KS_KVM_XSAVE_SIZE 4096

/// One CPUID leaf, the Swift-visible twin of struct kvm_cpuid_entry2.
typedef struct ks_cpuid_entry {
    uint32_t function, index, flags, eax, ebx, ecx, edx;
} ks_cpuid_entry;

/// KVM_GET_SUPPORTED_CPUID on the /dev/kvm fd into `out` (capacity `max`).
/// Returns the number of entries, or -errno (-E2BIG when `max` is too small).
int ks_kvm_get_supported_cpuid(int kvm_fd, ks_cpuid_entry *out, int max);

/// KVM_SET_CPUID2 on a vCPU fd. Returns 0 or -errno.
int ks_kvm_set_cpuid(int vcpu_fd, const ks_cpuid_entry *entries, int count);

/// KVM_SET_MSRS on a vCPU fd with `count` (index, value) pairs.
/// Returns the number of MSRs set (KVM stops at the first it rejects), or -errno.
int ks_kvm_set_msrs(int vcpu_fd, const uint32_t *indices, const uint64_t *values, int count);

/// KVM_GET_MSR_INDEX_LIST on the /dev/kvm fd into `out` (capacity `max`): the MSRs KVM saves
/// and restores for a vCPU. Returns the count, or -errno (-E2BIG when `max` is too small).
int ks_kvm_msr_index_list(int kvm_fd, uint32_t *out, int max);

/// KVM_GET_MSRS on a vCPU fd for `count` indices into `values`.
/// Returns the number read (KVM stops at the first it cannot read), or -errno.
int ks_kvm_get_msrs(int vcpu_fd, const uint32_t *indices, uint64_t *values, int count);

/// KVM_GET_XSAVE / KVM_SET_XSAVE with a KS_KVM_XSAVE_SIZE-byte buffer. 0 or -errno.
int ks_kvm_get_xsave(int vcpu_fd, uint8_t *out);
int ks_kvm_set_xsave(int vcpu_fd, const uint8_t *in);

#endif
