#!/usr/bin/env bash
# Pod start through CRI, runc vs kata, side by side (bench/cri-pod-start.py does the timing).
#
#   bench/cri-pod-start.sh [N]
#
# A containerd of its own with CNI (scripts/containerd-env.sh), the pause and busybox images built
# offline into its k8s.io namespace, kata on the backend `auto` picks (or $KATA_BACKEND).
# KATA_WARM=1: kata with a warm pool of one, each kata pod started once a warm sandbox is ready
# (docs/warm-sandboxes.md); pod start only.
# KATA_TEMPLATE=1: kata with VM templates (docs/snapshots.md; our VMM only, so with
# KATA_BACKEND=kvm on the nested KVM host), each kata pod started once the template is saved.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-5}
work=$(mktemp -d /tmp/kata-cri-bench.XXXXXX)
cleanup() { "$here/scripts/containerd-env.sh" stop "$work/cd" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

"$here/scripts/kata-config.sh" "$work/configuration.toml" "${KATA_BACKEND:-auto}"
if [ "${KATA_WARM:-0}" = 1 ]; then
  printf '\n[factory]\nvm_cache_number = 1\n' >> "$work/configuration.toml"
  export KATA_WARM_GLOB="/run/kata-swift/.warm/*/warm-*.sock"
fi
if [ "${KATA_TEMPLATE:-0}" = 1 ]; then
  printf '\n[factory]\nenable_template = true\ntemplate_path = "%s"\n' "$work/template" >> "$work/configuration.toml"
  export KATA_WARM_GLOB="$work/template/*.vm" KATA_LABEL="kata from a template"
fi
KATA_CONF_FILE="$work/configuration.toml" "$here/scripts/containerd-env.sh" start "$work/cd" "$here/.build-release/release" >/dev/null
ctr() { "$here/scripts/containerd-env.sh" ctr "$work/cd" "$@"; }
python3 "$here/scripts/make-image.py" "$work/pause.tar" localhost/pause:latest --bare /busybox sleep 2147483647 2>/dev/null
python3 "$here/scripts/make-image.py" "$work/busybox.tar" localhost/busybox:latest sh 2>/dev/null
ctr -n k8s.io images import "$work/pause.tar" >/dev/null
ctr -n k8s.io images import "$work/busybox.tar" >/dev/null
/usr/bin/python3 "$here/bench/cri-pod-start.py" "$work/cd/containerd.sock" "$n" "$work/pods"
