#!/usr/bin/env bash
# Host memory of one idle sandbox per runtime: the PSS of the runtime's shim and every process
# under it (for kata: the shim, QEMU and the guest RAM QEMU touched; for runsc: the runc shim,
# runsc's sandbox and gofer), with `sleep` idling in the container. Side by side in one run.
#
#   bench/sandbox-memory.sh [RUNTIME ...]   runtimes: runc runsc kata kata-initrd kata-kvm kata-qemu kata-template
#                                            (default: runc runsc kata kata-initrd)
#                                            kata: the guest's root on the agent's disk image; kata-initrd: the initramfs;
#                                            kata-kvm, kata-qemu: kata on our VMM, on QEMU (bench/nested.sh, where KVM runs guests)
#                                            kata-template: kata-kvm restored from a VM template (saved first, not measured)
#   KATA_CONF=FILE                           configuration for the kata runtime (default: built here)
#   SANDBOXES=N                              N idle sandboxes per runtime at once (default 1); the figures are per
#                                            sandbox: what one more pod costs on a host that runs several (code
#                                            pages are shared between them, and PSS divides them)
#   SETTLE_SECONDS=S                         wait before measuring (default 10)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runtimes=("$@"); [ ${#runtimes[@]} -gt 0 ] || runtimes=(runc runsc kata kata-initrd)
bin=${KATA_BIN_DIR:-$here/.build-release/release}  # make bench builds it (make release)

work=$(mktemp -d /tmp/kata-mem.XXXXXX)
sandboxes=${SANDBOXES:-1}
cleanup() {
  for rt in "${runtimes[@]}"; do
    for i in $(seq 1 "$sandboxes"); do
      ctr task kill -s KILL "mem-$rt-$i" >/dev/null 2>&1 || true
      ctr task delete "mem-$rt-$i" >/dev/null 2>&1 || true
      ctr containers delete "mem-$rt-$i" >/dev/null 2>&1 || true
    done
  done
  "$here/scripts/containerd-env.sh" stop "$work/cd" >/dev/null 2>&1 || true
  rm -rf "$work"
}
ctr() { "$here/scripts/containerd-env.sh" ctr "$work/cd" "$@"; }
trap cleanup EXIT

conf=${KATA_CONF:-$work/configuration.toml}
[ -n "${KATA_CONF:-}" ] || "$here/scripts/kata-config.sh" "$conf"
# The same configuration with the initramfs instead of the disk image (or the other way round).
if grep -q '^image = ' "$conf"; then
  sed -e "s|^image = .*|initrd = \"$here/build/guest/initramfs-agent.cpio\"|" "$conf" > "$work/initrd.toml"
else
  cp "$conf" "$work/initrd.toml"
  sed -i -e "s|^initrd = .*|image = \"$here/build/guest/agent.img\"|" "$conf"
fi
"$here/scripts/kata-config.sh" "$work/kvm.toml" kvm
"$here/scripts/kata-config.sh" "$work/qemu.toml" qemu
{ cat "$work/kvm.toml"; printf '\n[factory]\nenable_template = true\ntemplate_path = "%s"\n' "$work/templates"; } > "$work/template.toml"
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec runsc --network=none --ignore-cgroups "$@"\n' > "$work/bin/runsc-wrapper"
chmod +x "$work/bin/runsc-wrapper"
"$here/scripts/containerd-env.sh" start "$work/cd" "$bin" >/dev/null
python3 "$here/scripts/make-image.py" "$work/busybox.tar" docker.io/library/busybox:kata-mem sh >/dev/null
ctr images import "$work/busybox.tar" >/dev/null

descendants() { # pid -> pid and all its descendants
  echo "$1"
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do descendants "$c"; done
}
pss_kib() { # pids -> summed Pss in KiB
  local sum=0 p v
  for p in "$@"; do
    v=$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

for rt in "${runtimes[@]}"; do
  case "$rt" in
    runc) args=(--runtime io.containerd.runc.v2) ;;
    runsc) args=(--runtime io.containerd.runc.v2 --runc-binary "$work/bin/runsc-wrapper") ;;
    kata) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$conf") ;;
    kata-initrd) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$work/initrd.toml") ;;
    kata-kvm) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$work/kvm.toml") ;;
    kata-qemu) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$work/qemu.toml") ;;
    kata-template) args=(--runtime io.containerd.kata.v2 --runtime-config-path "$work/template.toml")
      # The first pod's shim saves the template once its pod is up; the measured pods restore it.
      ctr run --rm "${args[@]}" docker.io/library/busybox:kata-mem mem-template-maker true >/dev/null
      for _ in $(seq 1 2400); do compgen -G "$work/templates/*.vm" >/dev/null && break; sleep 0.1; done
      compgen -G "$work/templates/*.vm" >/dev/null || { echo "sandbox-memory: no template was saved" >&2; exit 1; }
      printf 'kata-template: template %s MiB on disk\n' "$(du -m "$work"/templates/*.vm | awk '{print $1}')" ;;
    *) echo "sandbox-memory: unknown runtime $rt" >&2; exit 2 ;;
  esac
  for i in $(seq 1 "$sandboxes"); do
    ctr run -d "${args[@]}" docker.io/library/busybox:kata-mem "mem-$rt-$i" sleep 3600 >/dev/null
  done
  # Let the sandbox settle: guest boot done, runsc's gofer up, and the pages the guest freed
  # reported back through the balloon (the guest reports free memory about 2 s after freeing it).
  sleep "${SETTLE_SECONDS:-10}"
  pids=$(for i in $(seq 1 "$sandboxes"); do descendants "$(pgrep -f -- "-id mem-$rt-$i( |$)" | head -1)"; done | sort -u)
  kib=$(( $(pss_kib $pids) / sandboxes ))
  names=$(for p in $pids; do printf '%s %s\n' "$(cat /proc/"$p"/comm 2>/dev/null)" "$(pss_kib "$p")"; done |
    awk -v n="$sandboxes" '{c[$1]++; k[$1]+=$2} END {for (p in c) {printf "%s%s×%d %.1f MiB", sep, p, c[p]/n, k[p]/n/1024; sep=", "}}')
  each=""; [ "$sandboxes" = 1 ] || each=" each of $sandboxes"
  printf '%-11s idle sandbox PSS%s %7.1f MiB  (%s)\n' "$rt" "$each" "$(echo "$kib/1024" | bc -l)" "$names"
  # shellcheck disable=SC2086
  "$here/bench/pss-parts.py" --sandboxes "$sandboxes" $pids
  echo "$rt $kib" >> "$work/results"
  for i in $(seq 1 "$sandboxes"); do
    ctr task kill -s KILL "mem-$rt-$i" >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do ctr task ls 2>/dev/null | grep -q "mem-$rt-$i .*RUNNING" || break; sleep 0.1; done
    ctr task delete "mem-$rt-$i" >/dev/null 2>&1 || true
    ctr containers delete "mem-$rt-$i" >/dev/null 2>&1 || true
  done
done
if grep -q '^runsc ' "$work/results" && grep -q '^kata ' "$work/results"; then
  k=$(awk '$1=="kata" {print $2}' "$work/results"); s=$(awk '$1=="runsc" {print $2}' "$work/results")
  printf 'kata / runsc idle sandbox memory: %.2f\n' "$(echo "$k/$s" | bc -l)"
fi
