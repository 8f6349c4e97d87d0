#!/usr/bin/env bash
# The agent initramfs plus a busybox rootfs at /test-rootfs, for guest container tests while the
# rootfs cannot come over virtio-fs yet.
#
#   guest-image/build-test-initramfs.sh [OUT]     default OUT: build/guest/initramfs-agent-test.cpio
#
# Builds the static agent first (guest-image/build-agent-initramfs.sh, incremental). The rootfs
# is Debian's busybox-static (/bin/busybox) with applet links and a user 1000 in /etc/passwd.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${1:-$root/build/guest/initramfs-agent-test.cpio}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
[ -x /bin/busybox ] || { echo "build-test-initramfs: /bin/busybox missing (package busybox-static)" >&2; exit 1; }
if file -L /bin/busybox | grep -q "dynamically linked"; then
  echo "build-test-initramfs: /bin/busybox is not static (install busybox-static)" >&2; exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
agent_cpio=$work/initramfs-agent.cpio
"$here/build-agent-initramfs.sh" "$agent_cpio" >/dev/null
agent=$work/kata-agent

rootfs=$work/rootfs
mkdir "$rootfs"
chmod 755 "$rootfs"
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,home/user,root}
install -m 0755 /bin/busybox "$rootfs/bin/busybox"
for a in sh echo cat id hostname mkdir sleep ls touch true head wc dd tr ps stty tty seq; do
  ln -s busybox "$rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nuser:x:1000:\n' > "$rootfs/etc/group"
"$here/build-initramfs.sh" "$out" "$agent" "$rootfs:/test-rootfs"
echo "$out"
