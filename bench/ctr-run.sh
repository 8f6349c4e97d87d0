#!/usr/bin/env bash
# `ctr run --rm <image> true` per runtime, side by side in one run, alternated, median of N.
#
#   bench/ctr-run.sh [N] [RUNTIME ...]      runtimes: runc runsc kata kata-warm kata-kvm kata-qemu kata-template
#
# kata uses the backend `auto` picks (or $KATA_BACKEND); kata-kvm and kata-qemu force our VMM and
# QEMU (which uses KVM where the host's KVM runs a guest userspace, TCG elsewhere). kata-warm is
# kata with a warm pool of one (`[factory] vm_cache_number = 1`, docs/warm-sandboxes.md): each
# run starts once a warm sandbox is ready, so it measures a pod taking a warm sandbox; the
# pool's refill between runs is not counted (the wait is printed). kata-template is kata on our
# VMM with VM templates (`[factory] enable_template = true`, docs/snapshots.md): the untimed
# first run's shim saves the template, and every timed run restores it.
#
# Uses a containerd of its own (scripts/containerd-env.sh) and the offline busybox image.
# runsc (gVisor) has no containerd shim in Debian; it runs under the runc shim through a wrapper
# (`runsc --network=none --ignore-cgroups`). Prints one line per runtime and ratios to runc.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-7}; shift || true
runtimes=("$@"); [ ${#runtimes[@]} -gt 0 ] || runtimes=(runc runsc)

work=$(mktemp -d /tmp/kata-bench.XXXXXX)
cleanup() { "$here/scripts/containerd-env.sh" stop "$work/cd" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/bin"
cat > "$work/bin/runsc-wrapper" <<'WRAP'
#!/bin/sh
exec runsc --network=none --ignore-cgroups "$@"
WRAP
chmod +x "$work/bin/runsc-wrapper"
"$here/scripts/kata-config.sh" "$work/configuration.toml" "${KATA_BACKEND:-auto}"
"$here/scripts/kata-config.sh" "$work/kvm.toml" kvm
"$here/scripts/kata-config.sh" "$work/qemu.toml" qemu
{ cat "$work/configuration.toml"; printf '\n[factory]\nvm_cache_number = 1\n'; } > "$work/warm.toml"
{ cat "$work/kvm.toml"; printf '\n[factory]\nenable_template = true\ntemplate_path = "%s"\n' "$work/templates"; } > "$work/template.toml"
shim_dir="$here/.build-release/release"  # make bench builds it (make release): what users run
"$here/scripts/containerd-env.sh" start "$work/cd" "$shim_dir" >/dev/null
ctr() { "$here/scripts/containerd-env.sh" ctr "$work/cd" "$@"; }
python3 "$here/scripts/make-image.py" "$work/busybox.tar" docker.io/library/busybox:kata-bench sh 2>/dev/null
ctr images import "$work/busybox.tar" >/dev/null

# Waits (up to 120 s) for a ready warm sandbox, a claim socket in a pool below sandbox_dir, once a
# pool has members (the first kata-warm run finds none and fills it).
wait_warm() {  # runs inside run_once's subshell: the waits go to a file
  local t0 t1
  t0=$(date +%s%N)
  compgen -G "/run/kata-swift/.warm/*/warm-*.lock" >/dev/null || return 0
  for _ in $(seq 1 1200); do
    compgen -G "/run/kata-swift/.warm/*/warm-*.sock" >/dev/null && break
    sleep 0.1
  done
  t1=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000000 ))" >> "$work/warm-waits"
}

# Waits (up to 240 s) for the template the first kata-template run's shim saves.
wait_template() {
  for _ in $(seq 1 2400); do
    compgen -G "$work/templates/*.vm" >/dev/null && return 0
    sleep 0.1
  done
  echo "ctr-run: no template was saved in $work/templates" >&2
}

run_once() { # runtime id -> seconds
  local rt=$1 id=$2 args=()
  case "$rt" in
    runc) args=(--runtime io.containerd.runc.v2) ;;
    runsc) args=(--runtime io.containerd.runc.v2 --runc-binary "$work/bin/runsc-wrapper") ;;
    kata) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$work/configuration.toml") ;;
    kata-warm) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$work/warm.toml"); wait_warm ;;
    kata-kvm) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$work/kvm.toml") ;;
    kata-qemu) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$work/qemu.toml") ;;
    kata-template) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$work/template.toml") ;;
  esac
  local t0 t1
  t0=$(date +%s%N)  # after wait_warm: a warm run is timed from a ready pool
  ctr run --rm "${args[@]}" docker.io/library/busybox:kata-bench "$id" true >/dev/null
  t1=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000 ))"
}

declare -A samples
for rt in "${runtimes[@]}"; do run_once "$rt" "warm-$rt" >/dev/null; done   # first run pays image unpack
[[ " ${runtimes[*]} " != *" kata-template "* ]] || wait_template
for i in $(seq 1 "$n"); do
  for rt in "${runtimes[@]}"; do samples[$rt]+="$(run_once "$rt" "b-$rt-$i") "; done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=""
for rt in "${runtimes[@]}"; do
  m=$(echo "${samples[$rt]}" | median)
  [ -n "$base" ] || base=$m
  printf '%-9s median %7.1f ms  (n=%d, samples ms: %s)  ratio to %s: %.2f\n' "$rt" "$(echo "$m/1000" | bc -l)" "$n" \
    "$(for s in ${samples[$rt]}; do printf '%.0f ' "$(echo "$s/1000" | bc -l)"; done)" "${runtimes[0]}" "$(echo "$m/$base" | bc -l)"
done
if [ -s "$work/warm-waits" ]; then
  echo "kata-warm: waited for the pool's refill before each run (ms, not counted): $(tr '\n' ' ' < "$work/warm-waits")"
fi
