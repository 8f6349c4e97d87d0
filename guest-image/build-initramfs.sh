#!/usr/bin/env bash
# Packs an initramfs (cpio newc, uncompressed or lz4) around a given /init, or with --ext4 the same
# tree as a read-only ext4 image (the guest's root on a virtio-blk disk, docs/guest-image.md).
#
#   guest-image/build-initramfs.sh [--lz4 | --ext4] [--busybox] OUT INIT [SRC:DEST ...]
#
# INIT becomes /init (mode 0755). Each SRC:DEST copies a host file to DEST inside the image
# (parent directories are created). --busybox adds Debian's static busybox (busybox-static) as
# /bin/busybox with a symlink for each of its applets (/bin/sh, /bin/ls, /sbin/ip, ...), as
# `busybox --install -s` would make at boot; the debug console's shell is /bin/sh. The image also gets the mount points the agent expects
# (/dev /proc /sys /run /tmp) and a /dev/console node, so the kernel can open an initial console.
# Output is reproducible: sorted entries, mtime 0, owner root.
set -euo pipefail

lz4=0
ext4=0
busybox=
while [ $# -gt 0 ]; do
  case "$1" in
    --lz4) lz4=1; shift ;;
    --ext4) ext4=1; shift ;;
    --busybox) busybox=/bin/busybox; shift ;;
    *) break ;;
  esac
done
if [ $# -lt 2 ]; then
  echo "usage: $0 [--lz4 | --ext4] [--busybox] OUT INIT [SRC:DEST ...]" >&2
  exit 2
fi
out=$1; init=$2; shift 2
[ -f "$init" ] || { echo "build-initramfs: init binary $init does not exist" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,tmp,etc}
chmod 1777 "$stage/tmp"
install -m 0755 "$init" "$stage/init"
for spec in "$@"; do
  src=${spec%%:*}; dest=${spec#*:}
  case "$dest" in /*) ;; *) echo "build-initramfs: destination '$dest' must be absolute" >&2; exit 1 ;; esac
  [ -e "$src" ] || { echo "build-initramfs: $src does not exist" >&2; exit 1; }
  mkdir -p "$stage$(dirname "$dest")"
  cp -a "$src" "$stage$dest"
done
if [ -n "$busybox" ]; then
  [ -x "$busybox" ] || { echo "build-initramfs: $busybox missing (Debian package busybox-static)" >&2; exit 1; }
  if ! file "$busybox" | grep -q "statically linked"; then
    echo "build-initramfs: $busybox is not static (install busybox-static, not busybox)" >&2; exit 1
  fi
  install -D -m 0755 "$busybox" "$stage/bin/busybox"
  # --list-full: one applet a line with its directory (bin/sh, usr/sbin/chroot); linuxrc is
  # for initrd-style boots and stays out. Files the caller added win over applet links.
  "$busybox" --list-full | LC_ALL=C sort | while read -r applet; do
    case "$applet" in */*) ;; *) continue ;; esac
    [ -e "$stage/$applet" ] || [ -L "$stage/$applet" ] && continue
    mkdir -p "$stage/$(dirname "$applet")"
    ln -s /bin/busybox "$stage/$applet"
  done
fi
# A character device needs root; without it the kernel just warns "unable to open an initial console".
if [ "$(id -u)" = 0 ]; then mknod -m 600 "$stage/dev/console" c 5 1; fi

find "$stage" -exec touch -h -d @0 {} +
tmp="$out.tmp.$$"
if [ "$ext4" = 1 ]; then
  # An ext4 file system populated from the tree (mke2fs -d), sized to the tree plus a margin; no
  # journal (the guest mounts it read-only), fixed UUID, hash seed and time, so two builds of the
  # same tree are byte-identical.
  kib=$(du -s -k --apparent-size "$stage" | cut -f1)
  files=$(find "$stage" | wc -l)
  mib=$(( (kib * 11 / 10 + files * 4 + 2048) / 1024 + 1 ))
  rm -f "$tmp"
  E2FSPROGS_FAKE_TIME=1 mke2fs -q -t ext4 -b 4096 -O ^has_journal,^resize_inode -m 0 -N $(( files + 64 )) \
    -U 6b617461-2d73-7769-6674-2d726f6f7466 -E root_owner=0:0,hash_seed=6b617461-2d73-7769-6674-2d726f6f7466 \
    -L kata-agent -d "$stage" "$tmp" "${mib}M"
  # mke2fs copies each file's ctime and atime from the tree (times of this build); zero them.
  ( cd "$stage" && find . -printf '%P\n' | LC_ALL=C sort |
      while read -r f; do echo "sif \"/$f\" ctime 0"; echo "sif \"/$f\" atime 0"; done ) > "$stage.debugfs"
  E2FSPROGS_FAKE_TIME=1 debugfs -w -f "$stage.debugfs" "$tmp" >/dev/null 2>&1
  rm -f "$stage.debugfs"
  mv "$tmp" "$out"
  echo "build-initramfs: $out (ext4, $(stat -c %s "$out") bytes)" >&2
  exit 0
fi
( cd "$stage" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    cpio --quiet -o -H newc --owner 0:0 --reproducible ) > "$tmp"
if [ "$lz4" = 1 ]; then
  # The kernel's decompressor understands only the legacy lz4 frame format (-l).
  lz4 -q -l -9 -f "$tmp" "$tmp.lz4" && mv "$tmp.lz4" "$tmp"
fi
mv "$tmp" "$out"
echo "build-initramfs: $out ($(stat -c %s "$out") bytes)" >&2
