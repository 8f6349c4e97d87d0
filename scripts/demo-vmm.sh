#!/usr/bin/env bash
# make demo: boots our guest kernel and initramfs in kata-swift's in-process KVM VMM
# (`kata-ctl boot`), printing the guest console and how long each stage took.
#
# On hosts whose KVM runs guest code natively this reaches the initramfs' /init in well under a
# second. On our CI machines KVM emulates guest kernel code (docs/vmm.md): the same boot takes
# minutes and stops at "Run /init", because no guest userspace can run there; the demo says so.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
kernel=build/guest/vmlinux
initrd=build/guest/initramfs-marker.cpio
ctl=.build/debug/kata-ctl
timeout=${DEMO_VMM_TIMEOUT:-900}

echo "== kata-swift demo: $(uname -r) host, $(nproc) cores"
echo "== kernel: $(readlink -f $kernel) ($(stat -Lc %s $kernel) bytes)"
echo "== initramfs: $initrd ($(stat -c %s $initrd) bytes), /init = guest-image/init/boot-marker.c"
"$ctl" boot --kernel "$kernel" --print-defaults | sed 's/^/== /'
echo "== booting in the in-process KVM VMM (stops after ${timeout}s at the latest)"
start=$(date +%s%N)
set +e
"$ctl" boot --kernel "$kernel" --initrd "$initrd" --memory 256 --timeout "$timeout" | tee /tmp/kata-demo-console.$$
status=${PIPESTATUS[0]}
set -e
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
echo
if grep -q "kata-swift: init reached userspace" /tmp/kata-demo-console.$$; then
  echo "== the guest ran /init and rebooted: ${ms} ms in all (kata-ctl exit $status)"
elif grep -q "Run /init" /tmp/kata-demo-console.$$; then
  echo "== the guest kernel booted to 'Run /init' in ${ms} ms (kata-ctl exit $status); this host's KVM cannot run guest userspace (docs/vmm.md)"
else
  echo "== the guest did not reach /init in ${ms} ms (kata-ctl exit $status); console above, see docs/vmm.md"
  rm -f /tmp/kata-demo-console.$$
  exit 1
fi
rm -f /tmp/kata-demo-console.$$
