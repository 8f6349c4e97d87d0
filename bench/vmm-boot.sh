#!/usr/bin/env bash
# Boot-time benchmark, first part: our in-process VMM (kata-ctl boot) vs qemu-system-x86_64
# -M microvm -accel kvm, same kernel (vmlinux), initramfs, command line and CPU features.
# For each run: wall time from process start to console milestones, and peak RSS (VmHWM) of the
# VMM process next to the guest memory size. Prints a markdown table with medians and ratios.
#
#   bench/vmm-boot.sh [RUNS]          (default 3; each run takes minutes where KVM emulates the guest)
# Environment: KATA_GUEST_KERNEL (vmlinux), KATA_GUEST_INITRD (cpio), KATA_CTL (binary),
#              BENCH_TIMEOUT (seconds per run, default 900), BENCH_MEMORY_MIB (default 256).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
timeout_s=${BENCH_TIMEOUT:-900}
mem=${BENCH_MEMORY_MIB:-256}
kernel=${KATA_GUEST_KERNEL:-$("$here/guest-image/build-kernel.sh" 2>/dev/null)/vmlinux}
kata_ctl=${KATA_CTL:-}
if [ -z "$kata_ctl" ]; then
  (cd "$here" && swift build -c release --product kata-ctl >&2)
  kata_ctl="$here/.build/release/kata-ctl"
fi
work=$(mktemp -d /tmp/vmm-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
initrd=${KATA_GUEST_INITRD:-}
if [ -z "$initrd" ]; then
  mkdir -p "$work/root/dev" "$work/root/proc"
  cp /bin/busybox "$work/root/init"
  (cd "$work/root" && find . -mindepth 1 | sed 's|^\./||' | sort | cpio -o -H newc --quiet) > "$work/initrd.cpio"
  initrd="$work/initrd.cpio"
fi
# The command line and template our VMM chooses by probing this host; QEMU gets the same line.
defaults=$("$kata_ctl" boot --kernel "$kernel" --print-defaults)
cmdline=$(sed -n 's/^cmdline: //p' <<<"$defaults")
template=$(sed -n 's/^cpu-template: //p' <<<"$defaults")
qemu_cpu="host,-arch-capabilities"
[ "$template" = emulated ] && qemu_cpu="$qemu_cpu,-cx16,-pcid,-invpcid,-popcnt,-xsave,-smap,-smep,-umip,-avx,-avx2"
milestones=("Booting paravirtualized kernel" "x86/fpu:" "Run /init")
final="Run /init"
echo "vmm-boot: kernel $kernel, initrd $initrd ($(stat -c %s "$initrd") bytes), ${mem} MiB, template $template" >&2
echo "vmm-boot: cmdline: $cmdline" >&2

now() { date +%s.%N; }

# run_one NAME COMMAND...: writes "$work/NAME.times" (milestone<TAB>seconds) and "$work/NAME.rss" (KiB).
run_one() {
  local name=$1; shift
  local log="$work/$name.log" start pid hwm=0 t
  : > "$work/$name.times"
  start=$(now)
  "$@" > "$log" 2>&1 < /dev/null &
  pid=$!
  local deadline=$(( $(date +%s) + timeout_s ))
  local pending=("${milestones[@]}")
  while kill -0 "$pid" 2>/dev/null; do
    t=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ -n "$t" ] && [ "$t" -gt "$hwm" ] && hwm=$t
    local rest=()
    for m in "${pending[@]}"; do
      if grep -qF "$m" "$log"; then
        printf '%s\t%s\n' "$m" "$(echo "$(now) - $start" | bc)" >> "$work/$name.times"
      else
        rest+=("$m")
      fi
    done
    pending=("${rest[@]}")
    if grep -qF "$final" "$work/$name.times" || [ "$(date +%s)" -ge "$deadline" ]; then break; fi
    # QEMU pauses the VM (and keeps running) after a KVM internal error: nothing more will come.
    if grep -q "KVM internal error" "$log"; then sleep 1; break; fi
    sleep 0.2
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$hwm" > "$work/$name.rss"
  if grep -q "emulation failure" "$log"; then
    echo "vmm-boot: $name stopped with a KVM emulation failure after: $(tail -n 3 "$log" | tr '\n' ' ' | cut -c1-200)" >&2
  fi
  echo "vmm-boot: $name: $(tr '\t\n' '= ' < "$work/$name.times") rss ${hwm} KiB" >&2
  cp "$log" "/tmp/vmm-bench-$name.log"
}

for i in $(seq 1 "$runs"); do
  run_one "ours-$i" "$kata_ctl" boot --kernel "$kernel" --initrd "$initrd" --memory "$mem" --cmdline "$cmdline" \
    --cpu-template "$template" --stop-on "$final"
  run_one "qemu-$i" qemu-system-x86_64 -M microvm,acpi=off -accel kvm -cpu "$qemu_cpu" -m "$mem" -smp 1 \
    -kernel "$kernel" -initrd "$initrd" -append "$cmdline" -display none -no-reboot -nodefaults -serial stdio
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "| milestone (wall s, median of $runs) | ours | QEMU microvm | ours/QEMU |"
echo "|---|---|---|---|"
for m in "${milestones[@]}"; do
  o=$(cat "$work"/ours-*.times | awk -F'\t' -v m="$m" '$1==m {print $2}' | median)
  q=$(cat "$work"/qemu-*.times | awk -F'\t' -v m="$m" '$1==m {print $2}' | median)
  no=$(cat "$work"/ours-*.times | awk -F'\t' -v m="$m" '$1==m' | wc -l)
  nq=$(cat "$work"/qemu-*.times | awk -F'\t' -v m="$m" '$1==m' | wc -l)
  ratio="-"
  [ "$o" != "-" ] && [ "$q" != "-" ] && ratio=$(echo "scale=2; $o / $q" | bc)
  echo "| \`$m\` | $o ($no/$runs reached) | $q ($nq/$runs reached) | $ratio |"
done
ro=$(cat "$work"/ours-*.rss | median); rq=$(cat "$work"/qemu-*.rss | median)
echo "| peak RSS of the VMM process (KiB, guest memory ${mem} MiB) | $ro | $rq | $(echo "scale=2; $ro / $rq" | bc) |"
