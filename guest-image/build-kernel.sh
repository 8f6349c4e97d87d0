#!/usr/bin/env bash
# Builds the guest kernel (vmlinux with the PVH note, and a bzImage) from Debian's linux-source
# package and our config fragment. The result is cached outside the clone, keyed by the fragment,
# the build recipe and the source package version, so a second build costs nothing.
#
#   guest-image/build-kernel.sh [OUT_DIR]      prints the cache directory holding vmlinux, bzImage, config
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${KATA_CACHE:-/var/cache/kata-swift}
src_pkg=linux-source-6.1
src_version=$(dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null) || {
  echo "build-kernel: $src_pkg is not installed (run scripts/install-deps.sh)" >&2; exit 1; }
# Bump when a change to this script changes what it builds (not for messages or cache handling).
recipe=1
key=$( { echo "$src_pkg $src_version recipe $recipe"; cat "$here/kernel.fragment"; } | sha256sum | cut -c1-16)
out="$cache_root/kernel-$key"

if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then
  echo "build-kernel: cached $out" >&2
  echo "$out"
  exit 0
fi

work="$cache_root/build-$key"
rm -rf "$work"; mkdir -p "$work"
tarball=$(ls /usr/src/linux-source-6.1.tar.* | head -n1)
echo "build-kernel: unpacking $tarball (source $src_version)" >&2
tar -C "$work" -xaf "$tarball"
cd "$work"/linux-source-*

echo "build-kernel: configuring (allnoconfig + guest-image/kernel.fragment)" >&2
scripts/kconfig/merge_config.sh -n "$here/kernel.fragment" > config.log 2>&1 || { cat config.log >&2; exit 1; }
# Every symbol of the fragment must have survived: a silently dropped option is a broken guest.
missing=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*) grep -qxF "$line" .config || { echo "build-kernel: not in final config: $line" >&2; missing=1; } ;;
    "# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}; ! grep -q "^$sym=" .config || { echo "build-kernel: should be unset: $sym" >&2; missing=1; } ;;
  esac
done < "$here/kernel.fragment"
[ "$missing" -eq 0 ] || exit 1

jobs=$(nproc)
echo "build-kernel: make -j$jobs vmlinux bzImage (about 7 minutes on 2 idle cores; progress every 30 s)" >&2
start=$(date +%s)
make -j"$jobs" vmlinux bzImage > build.log 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 30
  kill -0 "$pid" 2>/dev/null || break
  echo "build-kernel: $(( $(date +%s) - start )) s, $(find . -name '*.o' -newer .config | wc -l) objects built, last: $(tail -n1 build.log | cut -c1-80)" >&2
done
if ! wait "$pid"; then
  tail -n 40 build.log >&2
  echo "build-kernel: kernel build failed; full log in $PWD/build.log" >&2
  exit 1
fi
echo "build-kernel: built in $(( $(date +%s) - start )) s" >&2

mkdir -p "$out.tmp"
cp vmlinux "$out.tmp/vmlinux"
cp arch/x86/boot/bzImage "$out.tmp/bzImage"
cp .config "$out.tmp/config"
echo "$src_pkg $src_version" > "$out.tmp/source-version"
rm -rf "$out"; mv "$out.tmp" "$out"
cd /
rm -rf "$work" || echo "build-kernel: could not remove $work" >&2
echo "build-kernel: cached as $out" >&2
echo "$out"
