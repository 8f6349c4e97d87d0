#!/usr/bin/env bash
# Builds kata-agent fully static (glibc -static-executable, FoundationEssentials only), strips it
# and packs it as /init of an initramfs with guest-image/build-initramfs.sh, together with
# Debian's static busybox (/bin/busybox, /bin/sh and the applet links) for the debug console.
#
#   guest-image/build-agent-initramfs.sh [--lz4 | --ext4] [OUT]   default OUT: build/guest/initramfs-agent.cpio
#
# --ext4 writes the same tree as a read-only ext4 disk image instead (Kata's `image`: the guest's
# root on virtio-blk, paged in on demand rather than unpacked into guest RAM; docs/guest-image.md).
#
# The stripped binary is left next to OUT as kata-agent. Release builds go to .build-agent so they
# never invalidate the debug build in .build. The static flags stay on this command line (not
# unsafeFlags in Package.swift) so the package remains usable as a dependency.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lz4=()
case "${1:-}" in --lz4 | --ext4) lz4=("$1"); shift ;; esac
out=${1:-$root/build/guest/initramfs-agent.cpio}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
bin=$(dirname "$out")/kata-agent

cd "$root"
start=$(date +%s)
"$root/scripts/drop-stale-c-modules.sh" .build-agent
echo "build-agent-initramfs: swift build -c release --product kata-agent (static)" >&2
swift build -c release --product kata-agent -Xswiftc -static-executable --scratch-path .build-agent >&2
built=$(swift build -c release --product kata-agent -Xswiftc -static-executable --scratch-path .build-agent --show-bin-path)/kata-agent
# FoundationEssentials is fine; full Foundation drags in CoreFoundation and ICU (~45 MB). It gets
# linked by accident when a String method resolves to a Foundation extension (e.g.
# String.contains(String)); name the culprits instead of shipping a 60 MB /init.
if nm "$built" | grep -q ' [Tt] \$s10Foundation'; then
  echo "build-agent-initramfs: kata-agent links full Foundation (not just FoundationEssentials)." >&2
  echo "  Rebuild with -Xlinker -Map=FILE and look for libFoundation.a members pulled by our objects." >&2
  exit 1
fi
strip -o "$bin.tmp" "$built"
mv "$bin.tmp" "$bin"
echo "build-agent-initramfs: $bin $(stat -c %s "$bin") bytes stripped ($(stat -c %s "$built") unstripped), $(( $(date +%s) - start )) s" >&2
if file "$bin" 2>/dev/null | grep -q "dynamically linked"; then
  echo "build-agent-initramfs: $bin is not static" >&2; exit 1
fi
"$here/build-initramfs.sh" "${lz4[@]}" --busybox "$out" "$bin"
echo "$out"
