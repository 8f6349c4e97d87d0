#!/usr/bin/env bash
# make bench: side-by-side measurements on this host, each against a peer in the same run.
# Results and their meaning: docs/performance.md.
#
#   BENCH_RUNS=N        runs per measurement (default 5)
#   BENCH_VMM_BOOT=1    also boot our kernel under our VMM and under QEMU -accel kvm to "Run /init"
#                       (minutes per boot where KVM emulates guest code, as on our CI machines)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
runs=${BENCH_RUNS:-5}

echo "== ctr run --rm <busybox> true: kata-swift (auto backend; cold, and from a warm sandbox) vs runc vs runsc (gVisor), median of $runs, alternated"
bench/ctr-run.sh "$runs" runc runsc kata kata-warm

echo "== where kata-swift's ctr run --rm true spends its time: host and guest steps, median of $runs"
bench/start-path.sh "$runs"
echo "== the same from a warm sandbox (docs/warm-sandboxes.md): the shim's steps from the claim"
KATA_WARM=1 bench/start-path.sh "$runs"

echo "== Kubernetes pod start through containerd's CRI plugin and CNI: runc vs kata, median of $runs, alternated"
bench/cri-pod-start.sh "$runs"
echo "== the same with a warm pool of one: each kata pod takes a warm sandbox (NIC wired at claim)"
KATA_WARM=1 bench/cri-pod-start.sh "$runs"

echo "== host memory of one idle sandbox (PSS of the shim and everything under it, per process and part)"
bench/sandbox-memory.sh runc runsc kata kata-initrd

echo "== QEMU/TCG backend: spawn to first vsock echo, and vsock echo round trips (our vhost-user vsock)"
KS_HV_BENCH=1 swift test --skip-build --filter QEMUBenchmarkTests 2>&1 | grep -E "bench|median|round trip|passed|failed" || true

echo "== backends on this host (kata-ctl check): the agent channel runs on each backend that can run a guest userspace"
.build-release/release/kata-ctl check || true

echo "== in-process KVM backend: start() and stop() of our VMM with vsock + rng (the guest itself cannot reach userspace here)"
swift test --skip-build --filter KVMBackendTests/lifecycle 2>&1 | grep -E "BENCH|passed|failed" || true

echo "== agent channel per backend: VM start to first Health.Check, and 1000 Health.Check round trips over our vsock"
echo "   (auto = QEMU/TCG here; the in-process KVM backend prints SKIPPED where its KVM cannot run a userspace)"
KS_HV_BENCH=1 swift test --skip-build --filter AgentChannelTests 2>&1 | grep -E "BENCH|SKIPPED|passed|failed" || true

echo "== kata-agent under QEMU/TCG: start to the agent's 'listening' line, median of $runs"
guest-image/measure-agent-boot.sh -n "$runs"

if [ "${BENCH_VMM_BOOT:-0}" = 1 ]; then
  echo "== our VMM vs QEMU microvm -accel kvm: boot milestones and RSS"
  bench/vmm-boot.sh "$runs"
fi

echo "== virtio-fs: 256 MiB sequential write/read and 2000 small files, guest (QEMU/TCG) vs host, same directory"
bench/virtiofs.sh 256 2000
