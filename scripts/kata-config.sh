#!/usr/bin/env bash
# Writes a kata-swift configuration (Kata's schema, docs/configuration.md) for this checkout's guest
# kernel and agent initramfs to FILE. Used by make demo and make bench.
#
#   scripts/kata-config.sh FILE [BACKEND]     BACKEND: auto (default), kvm or qemu
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: $0 FILE [BACKEND]}
backend=${2:-auto}
table=qemu; [ "$backend" = kvm ] && table=kvm
# The guest's root: the agent's disk image (docs/guest-image.md).
root="image = \"$here/build/guest/agent.img\""
cat > "$out" <<TOML
# kata-swift configuration written by scripts/kata-config.sh (see docs/configuration.md)
[hypervisor.$table]
kernel = "$here/build/guest/vmlinux"
$root
default_vcpus = 1
default_memory = 128

[runtime]
hypervisor_name = "$backend"
TOML
