#!/usr/bin/env bash
# Installs every Debian package kata-swift needs to build, test, demo and benchmark.
# Idempotent: packages already present are skipped without touching the network.
set -euo pipefail

PACKAGES=(
  # build of the Swift package and its C targets
  libseccomp-dev pkg-config
  # kernel uapi headers: linux/fuse.h, linux/openat2.h (CHost ks_fuse)
  linux-libc-dev
  # guest kernel from Debian's source, initramfs
  linux-source-6.1 flex bison bc libelf-dev libssl-dev cpio lz4 xz-utils busybox-static
  # protobuf generation (make protos)
  protobuf-compiler libprotobuf-dev python3-protobuf
  golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev
  golang-github-gogo-protobuf-dev golang-github-gogo-googleapis-dev
  # containerd and peers for e2e tests and benchmarks; CNI plugins and a gRPC client for the CRI suite
  containerd runc runsc containernetworking-plugins python3-grpcio iproute2
  # second hypervisor backend and boot-time baseline
  qemu-system-x86
)

# QEMU switches to this dedicated system user once its devices are set up (hypervisor.qemu_user,
# docs/security.md): no home, no shell, no other process shares its uid.
qemu_user=kata-swift-qemu
if ! getent passwd "$qemu_user" >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$qemu_user"
  echo "install-deps: created system user $qemu_user"
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
