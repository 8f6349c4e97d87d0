// KVM: /dev/kvm system, VM and vCPU wrappers.
