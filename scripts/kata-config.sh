#!/usr/bin/env bash
# Writes a kata-swift configuration for this checkout's guest kernel and agent initramfs to FILE
# (see docs/configuration.md). Used by make demo and make bench.
#
#   scripts/kata-config.sh FILE [BACKEND]     BACKEND: auto (default), kvm or qemu
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: $0 FILE [BACKEND]}
cat > "$out" <<TOML
# kata-swift configuration written by scripts/kata-config.sh (see docs/configuration.md)
[hypervisor]
backend = "${2:-auto}"
kernel = "$here/build/guest/vmlinux"
initrd = "$here/build/guest/initramfs-agent.cpio"
vcpus = 1
memory_mib = 256
TOML
