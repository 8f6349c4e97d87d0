#!/usr/bin/env bash
# Our in-process VMM end to end on a real KVM. Runs INSIDE the nested KVM host:
#
#   scripts/nested-kvm.sh run -- scripts/nested-tests.sh ci|all
#
# ci:  kata-ctl check picks kvm; the agent answers over our vsock (1 and 2 vCPUs); a VM saved at
#      agent ready restores into two clones that answer on their own CIDs; pods through containerd
#      restore a template the first pod's shim saved, and warm sandboxes restore theirs, NIC and
#      all (TemplateE2ETests); ctr run --rm
#      through containerd with output and exit code on backend kvm; a guest's ARP and UDP/ICMP
#      round trip through our virtio-net and a tap; a pod claiming a warm sandbox (WarmPoolE2ETests).
# all: the same plus the whole containerd e2e suite, the agent-channel suite and the CRI suite
#      (pods with CNI networking, IPv6, streaming, port forwarding, also from warm sandboxes
#      and restored from VM templates)
#      and the warm pool through containerd, on backend kvm.
# warm: the warm pool through containerd on backend kvm (WarmPoolE2ETests).
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
  ci) filter='AgentOverVsockTests.healthAndGuestDetailsOnTheInProcessKVMBackend|AgentOverVsockTests.aTemplateSavedAtAgentReadyRestoresIntoAnsweringClones|VMRuntimeE2ETests.runStdoutExitCodeAndEventsInOrder|VMRuntimeE2ETests.runFromTheAgentImage|TemplateE2ETests|NetworkInterfaceTests.guestTrafficRoundTripsThroughTheTapOnOurVMM|WarmPoolE2ETests' ;;
  all) filter='AgentOverVsockTests|DebugConsoleExecTests|VMRuntimeE2ETests|NetworkInterfaceTests|CRITests.criSuiteWithKata|WarmPoolE2ETests|TemplateE2ETests' ;;
  warm) filter='WarmPoolE2ETests' ;;
  *) fail "unknown mode '$mode' (ci, all, warm)" ;;
esac
start=$(date +%s)
# The test binary itself, not `swift test`: SwiftPM compiles the package manifests first, which
# takes minutes where every instruction is emulated.
tests="$bin/kata-swiftPackageTests.xctest"
[ -x "$tests" ] || fail "$tests is missing: run make build on the host first"
# A watchdog inside L1 (docs/nested-kvm.md, "Hangs"): if the suites stall, then before the host's
# deadline (1020 s for ci, L1's boot included) kills L1 and everything in it, say where every
# process of ours waits, with the tail of each test containerd's log, then end with 124 as the
# host's deadline would. A whole L1 that stops running cannot say anything: nested-kvm.sh then
# prints where L1's CPU is.
watchdog=${NESTED_WATCHDOG_S:-$([ "$mode" = ci ] && echo 900 || echo 4500)}
"$tests" --testing-library swift-testing --no-parallel --filter "$filter" &
tests_pid=$!
waited=0
while kill -0 "$tests_pid" 2> /dev/null && [ "$waited" -lt "$watchdog" ]; do sleep 5; waited=$((waited + 5)); done
if kill -0 "$tests_pid" 2> /dev/null; then
  echo "nested-tests: HUNG: the suites are still running after ${watchdog} s; where everything waits:"
  ps -eo pid,ppid,stat,etimes,wchan:30,args --sort=pid | grep -E 'containerd|ctr |kata|qemu|PID' | grep -v grep | cut -c1-220
  for pid in $(pgrep -f 'containerd-shim-kata-v2|kata-swiftPackageTests|ctr '); do
    echo "nested-tests: threads of $pid ($(tr '\0' ' ' < /proc/$pid/cmdline 2> /dev/null | cut -c1-100)):"
    for task in /proc/$pid/task/*; do
      printf '  %s %-16s %-28s syscall %s\n' "${task##*/}" "$(cat $task/comm 2> /dev/null)" "$(cat $task/wchan 2> /dev/null)" \
        "$(cut -d' ' -f1 $task/syscall 2> /dev/null)"
    done
  done
  for log in /tmp/ks-e2e-*/containerd.log; do
    [ -f "$log" ] || continue
    echo "nested-tests: last lines of $log:"
    tail -n 40 "$log" | cut -c1-300 | sed 's/^/  /'
  done
  echo "nested-tests: kernel log:"; dmesg | tail -n 15 | sed 's/^/  /'
  kill -9 "$tests_pid" 2> /dev/null || true
  exit 124
fi
wait "$tests_pid"
echo "nested-tests: suites took $(( $(date +%s) - start )) s"

left=$(pgrep -f 'containerd-shim-kata-v2|kata-agent' || true)
[ -z "$left" ] || fail "processes left: $(ps -o pid,args -p "${left//$'\n'/,}" | tail -n +2)"
mounts=$(grep -E 'kata-swift|kata-containers' /proc/mounts || true)
[ -z "$mounts" ] || fail "mounts left: $mounts"
dirs=$(find /run -maxdepth 1 -name 'kata-swift*' -type d ! -empty 2> /dev/null || true)
[ -z "$dirs" ] || fail "sandbox directories left: $dirs"
echo "nested-tests: $mode passed, nothing left in L1"
