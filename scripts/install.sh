#!/usr/bin/env bash
# make install / make uninstall (see the Makefile and README's "Install").
#
#   scripts/install.sh install   DESTDIR PREFIX SYSCONFDIR BIN_DIR GUEST_DIR
#   scripts/install.sh uninstall DESTDIR PREFIX SYSCONFDIR
#
# install: BIN_DIR's containerd-shim-kata-v2 and kata-ctl into PREFIX/bin; GUEST_DIR's vmlinux,
# agent.img and initramfs-agent.cpio into PREFIX/share/kata-swift; the default configuration (kernel and image
# under PREFIX/share/kata-swift) into SYSCONFDIR/kata-swift/configuration.toml, or, when a file is
# already there and differs, beside it as configuration.toml.new (as Debian packages do). Every
# path is written under DESTDIR. uninstall removes those files, and the configuration only while it
# is still the installed default; then the directories install made, if empty.
set -euo pipefail
cmd=${1:-}; destdir=${2-}; prefix=${3:-/usr/local}; sysconfdir=${4:-/etc}
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$destdir$prefix/bin"
share="$destdir$prefix/share/kata-swift"
etc="$destdir$sysconfdir/kata-swift"
binaries=(containerd-shim-kata-v2 kata-ctl)
images=(vmlinux agent.img initramfs-agent.cpio)

# The default configuration for this PREFIX (docs/configuration.md).
default_config() {
  sed -e "s|@SHAREDIR@|$prefix/share/kata-swift|g" "$here/docs/configuration.toml.in"
}

case "$cmd" in
install)
  bin_dir=${5:?usage: $0 install DESTDIR PREFIX SYSCONFDIR BIN_DIR GUEST_DIR}; guest=${6:?guest image directory}
  for b in "${binaries[@]}"; do
    [ -x "$bin_dir/$b" ] || { echo "install: $bin_dir/$b is missing: run make release" >&2; exit 1; }
  done
  for i in "${images[@]}"; do
    [ -r "$guest/$i" ] || { echo "install: $guest/$i is missing: run make kernel agent-initramfs" >&2; exit 1; }
  done
  install -d -m 0755 "$bin" "$share" "$etc"
  for b in "${binaries[@]}"; do install -s -m 0755 "$bin_dir/$b" "$bin/$b"; echo "installed $bin/$b"; done
  for i in "${images[@]}"; do install -m 0644 "$(readlink -f "$guest/$i")" "$share/$i"; echo "installed $share/$i"; done
  new=$(mktemp); trap 'rm -f "$new"' EXIT
  default_config > "$new"
  if [ ! -e "$etc/configuration.toml" ]; then
    install -m 0644 "$new" "$etc/configuration.toml"; echo "installed $etc/configuration.toml"
  elif cmp -s "$new" "$etc/configuration.toml"; then
    echo "kept $etc/configuration.toml (already the default)"
  else
    install -m 0644 "$new" "$etc/configuration.toml.new"
    echo "kept your $etc/configuration.toml; the new default is $etc/configuration.toml.new"
  fi
  ;;
uninstall)
  for b in "${binaries[@]}"; do rm -f "$bin/$b"; done
  for i in "${images[@]}"; do rm -f "$share/$i"; done
  rm -f "$etc/configuration.toml.new"
  if [ -f "$etc/configuration.toml" ]; then
    if default_config | cmp -s - "$etc/configuration.toml"; then
      rm -f "$etc/configuration.toml"
    else
      echo "kept $etc/configuration.toml: it differs from the installed default" >&2
    fi
  fi
  # Only the directories that are ours, and only when empty.
  rmdir "$share" "$etc" 2>/dev/null || true
  ;;
*) echo "usage: $0 install|uninstall DESTDIR PREFIX SYSCONFDIR [BIN_DIR GUEST_DIR]" >&2; exit 2 ;;
esac
