#!/usr/bin/env bash
# virtio-fs throughput: guest-image/init/virtiofs-check.c inside a QEMU/TCG guest over virtio-fs
# (our FUSE server + VirtioFsDevice behind vhost-user-fs-device), then the same program on the host
# on the same directory. Prints MB/s (sequential write + fsync, sequential read of a MiB-sized file)
# and ops/s (small files: create, stat, delete) for both, and guest/host ratios.
#
#   bench/virtiofs.sh [MiB] [FILES]      (defaults 256 and 2000)
# Needs qemu-system-x86 and a built test bundle (swift build --build-tests); the guest kernel comes
# from the cache (make kernel). TCG emulates the guest CPU: guest numbers are CPU bound here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
KS_HV_BENCH=1 KS_VFS_MIB=${1:-256} KS_VFS_FILES=${2:-2000} \
  swift test --skip-build --filter VirtioFsBenchmarkTests 2>&1 | grep -E "BENCH|passed|failed|FAIL" || true
