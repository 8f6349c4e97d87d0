#!/usr/bin/env bash
# Soak (docs/security.md, "Soak"): many sandboxes and many processes through containerd, then
# proof that nothing was left behind and that a long-lived shim does not grow.
#
#   bench/soak.sh [CYCLES(500)] [PODS(10)]
#
# 1. CYCLES sequential `ctr run --rm` (a VM each): afterwards no shim, no QEMU, no mount, no
#    sandbox directory, no shim socket, no FIFO directory of ours.
# 2. One pod, CYCLES `ctr task exec` into it: the shim's open descriptors and RSS before and after.
# 3. PODS pods at once (`ctr run -d`), then all killed and deleted: nothing left.
# Prints a summary table and exits 1 on any leak. Uses the debug or release shim built in .build
# (copied, so a rebuild during the run does not disturb it) and the guest images in build/guest.
set -euo pipefail

cycles=${1:-500}
pods=${2:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/ks-soak-XXXXXX)
sandbox_dir=/run/ks-soak-$$
image=docker.io/library/busybox:soak
shim=${KATA_SOAK_SHIM:-$root/.build/debug/containerd-shim-kata-v2}
kernel=${KATA_GUEST_KERNEL:-$root/build/guest/vmlinux}
initrd=${KATA_AGENT_INITRD:-$root/build/guest/initramfs-agent.cpio}

mkdir -p "$work/bin"
cp "$shim" "$work/bin/containerd-shim-kata-v2"
cat > "$work/kata.toml" <<TOML
[hypervisor.qemu]
kernel = "$kernel"
initrd = "$initrd"
[runtime]
hypervisor_name = "auto"
sandbox_dir = "$sandbox_dir"
TOML
export KATA_CONF_FILE="$work/kata.toml"

cleanup() {
  "$root/scripts/containerd-env.sh" stop "$work/containerd" > /dev/null 2>&1 || true
  rm -rf "$work"
  rmdir "$sandbox_dir" 2> /dev/null || true
}
trap cleanup EXIT

"$root/scripts/containerd-env.sh" start "$work/containerd" "$work/bin" 2> /dev/null
sock="$work/containerd/containerd.sock"
CTR() { ctr -a "$sock" "$@"; }
python3 "$root/scripts/make-image.py" "$work/busybox.tar" "$image" sh > /dev/null
CTR images import "$work/busybox.tar" > /dev/null

fifos_before=$(ls /run/containerd/fifo 2> /dev/null | sort || true)
failures=0
leaks() {  # prints one line per leftover; none means clean
  pgrep -f "$work/bin/containerd-shim-kata-v2" | sed 's/^/shim process /' || true
  pgrep -f "qemu-system.*$sandbox_dir" | sed 's/^/QEMU process /' || true
  grep -F -e "$sandbox_dir" -e "$work/containerd/" /proc/mounts | awk '{print "mount " $2}' || true
  ls "$sandbox_dir" 2> /dev/null | sed 's/^/sandbox directory /' || true
  comm -13 <(echo "$fifos_before") <(ls /run/containerd/fifo 2> /dev/null | sort) | sed '/^$/d; s/^/FIFO directory /' || true
  CTR tasks ls -q | sed 's/^/task /'
}

# 1. sequential sandboxes
t0=$(date +%s.%N)
for i in $(seq 1 "$cycles"); do
  out=$(CTR run --rm --runtime io.containerd.kata.v2 "$image" "soak-$i" echo "cycle $i" 2>&1) || true
  if [ "$out" != "cycle $i" ]; then
    failures=$((failures + 1))
    echo "soak: cycle $i: $out" >&2
  fi
done
t1=$(date +%s.%N)
left1=$(leaks)
seq_seconds=$(echo "$t1 - $t0" | bc)

# 2. one long-lived shim, many execs
CTR run -d --runtime io.containerd.kata.v2 "$image" soak-pod sleep 100000 > /dev/null
pid=$(pgrep -f "$work/bin/containerd-shim-kata-v2.*-id soak-pod" | head -1)
# The baseline is taken after a tenth of the execs: descriptors the runtime opens once, on first
# use (timers, event loops), and the allocator's first growth come before it.
warm=$(( cycles / 10 > 5 ? cycles / 10 : 5 ))
exec_failures=0
for i in $(seq 1 "$((cycles + warm))"); do
  out=$(CTR task exec --exec-id "e$i" soak-pod echo "exec $i" 2>&1) || true
  [ "$out" = "exec $i" ] || { exec_failures=$((exec_failures + 1)); echo "soak: exec $i: $out" >&2; }
  if [ "$i" = "$warm" ]; then
    fds0=$(ls /proc/"$pid"/fd | wc -l)
    rss0=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
  fi
done
fds1=$(ls /proc/"$pid"/fd | wc -l)
rss1=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
CTR task kill -s SIGKILL soak-pod > /dev/null
for _ in $(seq 1 100); do CTR task ls | grep -q "soak-pod.*STOPPED" && break; sleep 0.2; done
CTR task delete soak-pod > /dev/null 2>&1 || true
CTR containers delete soak-pod > /dev/null
sleep 2
left2=$(leaks)

# 3. concurrent pods
t2=$(date +%s.%N)
for i in $(seq 1 "$pods"); do
  CTR run -d --runtime io.containerd.kata.v2 "$image" "pod-$i" sleep 100000 > /dev/null &
done
wait
running=0
for _ in $(seq 1 600); do
  running=$(CTR tasks ls | grep -c "RUNNING" || true)
  [ "$running" -ge "$pods" ] && break
  sleep 0.5
done
t3=$(date +%s.%N)
for i in $(seq 1 "$pods"); do CTR task kill -s SIGKILL "pod-$i" > /dev/null 2>&1 || true; done
for i in $(seq 1 "$pods"); do
  for _ in $(seq 1 100); do CTR task ls | grep -q "pod-$i .*STOPPED" && break; sleep 0.2; done
  CTR task delete "pod-$i" > /dev/null 2>&1 || true
  CTR containers delete "pod-$i" > /dev/null 2>&1 || true
done
sleep 2
left3=$(leaks)

printf '\n| soak phase | result |\n|---|---|\n'
printf '| %s sequential `ctr run --rm` | %s failed, %.1f s (%.2f s each) |\n' "$cycles" "$failures" "$seq_seconds" "$(echo "$seq_seconds / $cycles" | bc -l)"
printf '| left after them | %s |\n' "${left1:-nothing}"
printf '| %s execs into one pod (after %s warm-up) | %s failed; shim fds %s -> %s, RSS %s -> %s KiB |\n' "$cycles" "$warm" "$exec_failures" "$fds0" "$fds1" "$rss0" "$rss1"
printf '| left after the pod | %s |\n' "${left2:-nothing}"
printf '| %s pods at once | %s running after %.1f s |\n' "$pods" "$running" "$(echo "$t3 - $t2" | bc)"
printf '| left after them | %s |\n' "${left3:-nothing}"
[ -z "$left1$left2$left3" ] && [ "$failures" = 0 ] && [ "$exec_failures" = 0 ] && [ "$fds1" -le "$fds0" ] && [ "$running" -ge "$pods" ]
