#!/usr/bin/env bash
# Our VMM against QEMU-KVM on a real KVM, side by side in one run. Runs INSIDE the nested KVM host
# (`make bench-nested` = scripts/nested-kvm.sh run -- bench/nested.sh ROUNDS):
#   1. boot to the init marker: our VMM (release kata-ctl boot) vs QEMU -M microvm and -M pc (PVH),
#      same kernel, initramfs and command line: time, KVM exits, peak RSS (bench/nested-boot.py);
#   2. `ctr run --rm busybox true` through containerd with runc, our shim on backend kvm, and our
#      shim on backend qemu (QEMU with -accel kvm here) (bench/ctr-run.sh); then runc against our
#      shim on our VMM, cold and from a warm sandbox (`[factory] vm_cache_number = 1`);
#   3. the host memory of one idle sandbox (PSS, parts, and what our VMM's shim costs beyond the
#      guest RAM it touched) for runc, kata on our VMM and kata on QEMU-KVM (bench/sandbox-memory.sh);
#   4. VM templates (docs/snapshots.md): ctr run cold vs restored from a template, and the memory
#      of one and of three idle sandboxes booted vs restored;
#   5. Kubernetes pod start through CRI (CNI networking) on our VMM: runc vs kata booting vs kata
#      restored from a template with the pod's NIC (bench/cri-pod-start.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-5}
[ -c /dev/kvm ] || { echo "bench/nested.sh: no /dev/kvm: run it inside scripts/nested-kvm.sh" >&2; exit 1; }
kata_ctl=$here/.build/release/kata-ctl
[ -x "$kata_ctl" ] || { echo "bench/nested.sh: $kata_ctl is missing (make bench-nested builds it)" >&2; exit 1; }
echo "bench-nested: L1 $(uname -r), $(nproc) CPU(s); $rounds rounds, alternated"
echo
echo "## Boot to the init marker (our VMM vs QEMU-KVM)"
python3 "$here/bench/nested-boot.py" "$rounds" "$kata_ctl" "$here/build/guest/vmlinux" "$here/build/guest/initramfs-marker.cpio"
echo
echo "## ctr run --rm busybox true (medians of $rounds)"
"$here/bench/ctr-run.sh" "$rounds" runc kata-kvm kata-qemu
echo
echo "## ctr run --rm busybox true from a warm sandbox on our VMM (medians of $rounds)"
KATA_BACKEND=kvm "$here/bench/ctr-run.sh" "$rounds" runc kata kata-warm
echo
echo "## Idle sandbox memory (PSS after ${SETTLE_SECONDS:=20} s)"
SETTLE_SECONDS=$SETTLE_SECONDS "$here/bench/sandbox-memory.sh" runc kata-kvm kata-qemu
echo
echo "## ctr run --rm busybox true restored from a VM template on our VMM (medians of $rounds)"
KATA_BACKEND=kvm "$here/bench/ctr-run.sh" "$rounds" runc kata kata-template
echo
echo "## Idle sandbox memory, booted vs restored from a template (PSS after $SETTLE_SECONDS s)"
SETTLE_SECONDS=$SETTLE_SECONDS "$here/bench/sandbox-memory.sh" kata-kvm kata-template
SANDBOXES=3 SETTLE_SECONDS=$SETTLE_SECONDS "$here/bench/sandbox-memory.sh" kata-kvm kata-template
echo
echo "## Pod start through CRI on our VMM, booted vs restored from a template (medians of $rounds)"
CRI_START_ONLY=1 KATA_BACKEND=kvm "$here/bench/cri-pod-start.sh" "$rounds"
KATA_BACKEND=kvm KATA_TEMPLATE=1 "$here/bench/cri-pod-start.sh" "$rounds"
