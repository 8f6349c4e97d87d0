#!/usr/bin/env bash
# Our in-process VMM end to end on a real KVM. Runs INSIDE the nested KVM host:
#
#   scripts/nested-kvm.sh run -- scripts/nested-tests.sh ci|all
#
# ci:  kata-ctl check picks kvm; the agent answers over our vsock (1 and 2 vCPUs); ctr run --rm
#      through containerd with output and exit code on backend kvm; a guest's ARP and UDP/ICMP
#      round trip through our virtio-net and a tap.
# all: the same plus the whole containerd e2e suite, the agent-channel suite and the CRI suite
#      (pods with CNI networking, IPv6, streaming, port forwarding) on backend kvm.
# Afterwards nothing of ours may be left in L1: no shim, no sandbox directory, no mount.
# Needs `make build` (debug), `make kernel agent-initramfs` on the host first (L1 sees them).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-ci}

fail() { echo "nested-tests: FAILED: $*" >&2; exit 1; }
[ -c /dev/kvm ] || fail "no /dev/kvm: run me inside scripts/nested-kvm.sh"
echo "nested-tests: L1 kernel $(uname -r), $(nproc) CPU(s), $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"

bin=.build/debug
check=$("$bin/kata-ctl" check --refresh 2>&1) || fail "kata-ctl check failed: $check"
echo "$check" | sed 's/^/nested-tests: check: /'
grep -q '^kvm  (in-process VMM): runs a guest userspace' <<< "$check" || fail "kata-ctl check says the kvm backend cannot run here"
grep -q '^auto -> kvm' <<< "$check" || fail "auto does not pick kvm"
defaults=$("$bin/kata-ctl" boot --kernel /dev/null --print-defaults 2>&1)
echo "$defaults" | sed 's/^/nested-tests: defaults: /'
grep -q '^cpu-template: host' <<< "$defaults" || fail "the CPU template on a real KVM should be 'host'"
! grep -q 'clearcpuid\|noxsave' <<< "$defaults" || fail "a real KVM needs no clearcpuid/noxsave"

# The images the host built (make kernel agent-initramfs): nothing may be built in L1.
guest=$PWD/build/guest
for f in vmlinux initramfs-agent.cpio agent.img; do [ -r "$guest/$f" ] || fail "$guest/$f is missing: run make kernel agent-initramfs on the host"; done
export KATA_GUEST_KERNEL=$guest/vmlinux KATA_AGENT_INITRD=$guest/initramfs-agent.cpio KATA_AGENT_IMAGE=$guest/agent.img
export KATA_REQUIRE_KVM=1 KATA_E2E_BACKEND=kvm KATA_E2E_VCPUS=2
case "$mode" in
  ci) filter='AgentOverVsockTests.healthAndGuestDetailsOnTheInProcessKVMBackend|VMRuntimeE2ETests.runStdoutExitCodeAndEventsInOrder|VMRuntimeE2ETests.runFromTheAgentImage|NetworkInterfaceTests.guestTrafficRoundTripsThroughTheTapOnOurVMM' ;;
  all) filter='AgentOverVsockTests|DebugConsoleExecTests|VMRuntimeE2ETests|NetworkInterfaceTests|CRITests.criSuiteWithKata' ;;
  *) fail "unknown mode '$mode' (ci, all)" ;;
esac
start=$(date +%s)
# The test binary itself, not `swift test`: SwiftPM compiles the package manifests first, which
# takes minutes where every instruction is emulated.
tests="$bin/kata-swiftPackageTests.xctest"
[ -x "$tests" ] || fail "$tests is missing: run make build on the host first"
"$tests" --testing-library swift-testing --no-parallel --filter "$filter"
echo "nested-tests: suites took $(( $(date +%s) - start )) s"

left=$(pgrep -f 'containerd-shim-kata-v2|kata-agent' || true)
[ -z "$left" ] || fail "processes left: $(ps -o pid,args -p "${left//$'\n'/,}" | tail -n +2)"
mounts=$(grep -E 'kata-swift|kata-containers' /proc/mounts || true)
[ -z "$mounts" ] || fail "mounts left: $mounts"
dirs=$(find /run -maxdepth 1 -name 'kata-swift*' -type d ! -empty 2> /dev/null || true)
[ -z "$dirs" ] || fail "sandbox directories left: $dirs"
echo "nested-tests: $mode passed, nothing left in L1"
