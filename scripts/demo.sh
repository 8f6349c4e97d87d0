#!/usr/bin/env bash
# make demo: runs a container in a microVM through containerd and our shim, end to end.
#
# Starts a containerd of its own (scripts/containerd-env.sh: own root, state and socket), imports
# the offline busybox image (scripts/make-image.py), and runs
#   ctr run --rm --runtime io.containerd.kata.v2 --runtime-config-path CONF IMAGE demo uname -a
# then shows that the kernel that answered is the guest's, which hypervisor ran it, and how long
# it took. Its containerd is stopped at the end, whatever happens.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bin=$here/.build-release/release  # make demo builds it (make release): what users run
kernel=$here/build/guest/vmlinux
initrd=$here/build/guest/initramfs-agent.cpio
image=docker.io/library/busybox:kata-demo

work=$(mktemp -d /tmp/kata-demo.XXXXXX)
cleanup() {
  scripts/containerd-env.sh stop "$work/cd" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

scripts/kata-config.sh "$work/configuration.toml"

echo "== kata-swift demo on $(uname -n): host kernel $(uname -r), $(nproc) cores"
echo "== hypervisor backends on this host (kata-ctl check):"
"$bin/kata-ctl" check 2>&1 | sed 's/^/   /'
echo "== guest kernel $(readlink -f "$kernel"), initramfs $initrd ($(stat -c %s "$initrd") bytes)"

scripts/containerd-env.sh start "$work/cd" "$bin"
ctr() { scripts/containerd-env.sh ctr "$work/cd" "$@"; }
python3 scripts/make-image.py "$work/busybox.tar" "$image" sh >/dev/null
ctr images import "$work/busybox.tar" >/dev/null
echo "== ctr run --rm --runtime io.containerd.kata.v2 $image demo uname -a"
start=$(date +%s%N)
set +e
out=$(ctr run --rm --runtime io.containerd.kata.v2 --runtime-config-path "$work/configuration.toml" \
  "$image" demo uname -a 2>&1)
status=$?
set -e
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "$out" | sed 's/^/   /'
backend=$(grep -ho 'hypervisor backend: [^"]*)' "$work/cd/containerd.log" 2>/dev/null | tail -1 || true)
if [ $status -ne 0 ]; then
  echo "== ctr run failed (exit $status) after ${ms} ms; containerd log tail:"
  tail -n 30 "$work/cd/containerd.log" | sed 's/^/   /'
  exit 1
fi
if ! grep -q -- "-kata-swift" <<<"$out"; then
  echo "== the container did not report our guest kernel (host is $(uname -r))"
  exit 1
fi
echo "== the container ran on the guest kernel $(awk '{print $3}' <<<"$out"), not the host's $(uname -r)"
[ -n "$backend" ] && echo "== ${backend}"
echo "== ctr run --rm took ${ms} ms (VM boot, agent, container, teardown)"
