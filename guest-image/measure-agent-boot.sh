#!/usr/bin/env bash
# Boots the agent initramfs under QEMU/TCG N times and prints the wall time from QEMU's start to
# the agent's "listening on vsock://-1:1024" console line, then the median.
#
#   guest-image/measure-agent-boot.sh [-n N] [KERNEL] [INITRD]
#   defaults: 5 runs, the kernel of guest-image/build-kernel.sh, build/guest/initramfs-agent.cpio
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
runs=5
if [ "${1:-}" = "-n" ]; then runs=$2; shift 2; fi
kernel=${1:-$("$here/build-kernel.sh")/vmlinux}
initrd=${2:-$here/../build/guest/initramfs-agent.cpio}
[ -f "$kernel" ] && [ -f "$initrd" ] || { echo "measure-agent-boot: need $kernel and $initrd" >&2; exit 1; }

# TCG's guest TSC ticks at the host's rate: tell the guest that rate, or its clock runs wild.
# noapictimer no_timer_check noreplace-smp are the shim's for a TCG guest (QEMUCommand.tcgCmdline).
khz=$(awk -F: '/^cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
work=$(mktemp -d)
qpid=
trap '[ -n "$qpid" ] && kill -9 "$qpid" 2>/dev/null; rm -rf "$work"' EXIT
times=()
for i in $(seq 1 "$runs"); do
  log=$work/console.$i
  : >"$log"
  start=$(date +%s%N)
  qemu-system-x86_64 -M microvm,acpi=off -accel tcg -cpu max -m 256 -nographic -no-reboot \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 reboot=t panic=-1 tsc_early_khz=${khz:-2000000} noapictimer no_timer_check noreplace-smp" </dev/null >"$log" 2>&1 &
  qpid=$!
  until grep -q "listening on vsock://-1:1024" "$log"; do
    kill -0 "$qpid" 2>/dev/null || { cat "$log" >&2; echo "measure-agent-boot: QEMU exited early" >&2; exit 1; }
    [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 120000 ] || { echo "measure-agent-boot: timeout" >&2; exit 1; }
    sleep 0.01
  done
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  kill -9 "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=
  times+=("$ms")
  echo "run $i: ${ms} ms ($(grep -o 'ready after [0-9]* ms' "$log"), kernel said: $(grep -o '\[ *[0-9.]*\] Run /init' "$log" | head -1))"
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}')
echo "median of $runs: ${median} ms (QEMU start to 'listening on vsock://-1:1024')"
