#!/usr/bin/env bash
# Where the time of `ctr run --rm <busybox> true` goes on kata-swift: RUNS runs through a containerd
# of our own, each step's time from the moment ctr started (median over the runs), from the shim's
# "start path" log line (Runtime's StartPath: host steps on the host's boot clock from the shim
# process's start; the agent's steps on the guest's boot clock, placed on the host's time line by
# aligning "agent listening" with the shim's "agent ready"). docs/performance.md.
#
#   bench/start-path.sh [RUNS]         default 5
#   KATA_CONF=FILE                     configuration (default: scripts/kata-config.sh, the disk image)
#   KATA_BIN_DIR=DIR                   where containerd-shim-kata-v2 is (default: the release build)
#   KATA_WARM=1                        with a warm pool of one (docs/warm-sandboxes.md): each run
#                                      starts once a warm sandbox is ready; the shim's steps then
#                                      count from the claim (its row "shim process started")
#   KATA_TEMPLATE=1                    with VM templates (docs/snapshots.md; our VMM only): the
#                                      first pod's shim saves the template, every run restores it
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
bin=${KATA_BIN_DIR:-$here/.build-release/release}
work=$(mktemp -d /tmp/kata-path.XXXXXX)
ctr() { "$here/scripts/containerd-env.sh" ctr "$work/cd" "$@"; }
trap '"$here/scripts/containerd-env.sh" stop "$work/cd" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
conf=${KATA_CONF:-$work/configuration.toml}
[ -n "${KATA_CONF:-}" ] || "$here/scripts/kata-config.sh" "$conf"
warm=${KATA_WARM:-0}
template=${KATA_TEMPLATE:-0}
if [ "$warm" = 1 ] || [ "$template" = 1 ]; then printf '\n[factory]\n' >> "$conf"; fi
if [ "$warm" = 1 ]; then printf 'vm_cache_number = 1\n' >> "$conf"; fi
if [ "$template" = 1 ]; then printf 'enable_template = true\ntemplate_path = "%s"\n' "$work/template" >> "$conf"; fi
"$here/scripts/containerd-env.sh" start "$work/cd" "$bin" >/dev/null
python3 "$here/scripts/make-image.py" "$work/busybox.tar" docker.io/library/busybox:kata-path sh >/dev/null
ctr images import "$work/busybox.tar" >/dev/null

if [ "$warm" = 1 ] || [ "$template" = 1 ]; then  # the first pod fills the pool, or saves the template
  ctr run --rm --runtime io.containerd.kata.v2 --runtime-config-path "$conf" docker.io/library/busybox:kata-path path-fill true
fi
if [ "$template" = 1 ]; then
  for _ in $(seq 1 2400); do compgen -G "$work/template/*.vm" >/dev/null && break; sleep 0.1; done
fi
for i in $(seq 1 "$runs"); do
  if [ "$warm" = 1 ]; then
    for _ in $(seq 1 1200); do compgen -G "/run/kata-swift/.warm/*/warm-*.sock" >/dev/null && break; sleep 0.1; done
  fi
  t0=$(date +%s%3N)
  ctr run --rm --runtime io.containerd.kata.v2 --runtime-config-path "$conf" docker.io/library/busybox:kata-path "path-$i" true
  t1=$(date +%s%3N)
  echo "run path-$i $t0 $t1" >> "$work/runs"
done
python3 - "$work/runs" "$work/cd/containerd.log" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    _, rid, t0, t1 = line.split()
    runs[rid] = (int(t0), int(t1))
rows = {}
for line in open(sys.argv[2], errors="replace"):
    m = re.search(r"id=(path-\d+) .*start path \(ms since the shim process started\): (.*?); (guest boot clock \(ms\): (.*?); )?shim started at unix ms (\d+)", line)
    if not m or m.group(1) not in runs:
        continue
    t0, t1 = runs[m.group(1)]
    shim = int(m.group(5)) - t0
    steps = [("shim process started", shim)]
    for part in m.group(2).split(", "):
        name, ms = part.rsplit(" ", 1)
        steps.append((name, shim + int(ms)))
    if m.group(4):
        guest = dict((n.rsplit(" ", 1)[0], int(n.rsplit(" ", 1)[1])) for n in m.group(4).split(", "))
        ready = dict(steps)["agent ready"]
        offset = ready - guest["agent listening"]
        steps += [("guest: kernel started (est.)", offset), ("guest: init exec'd", offset + guest["init exec"]),
                  ("guest: agent main", offset + guest["agent main"]), ("guest: agent listening", ready)]
    steps.append(("ctr returned (exit, teardown)", t1 - t0))
    for name, ms in steps:
        rows.setdefault(name, []).append(ms)
if not rows:
    sys.exit("start-path: no 'start path' line in containerd's log")
n = len(rows["ctr returned (exit, teardown)"])
print(f"| step (median of {n} runs of ctr run --rm true) | ms from ctr start | since the step before |")
print("|---|---|---|")
previous = 0
for name, values in sorted(rows.items(), key=lambda kv: statistics.median(kv[1])):
    ms = statistics.median(values)
    print(f"| {name} | {ms:.0f} | +{ms - previous:.0f} |")
    previous = ms
PY
