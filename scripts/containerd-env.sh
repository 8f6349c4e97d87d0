#!/usr/bin/env bash
# Runs a containerd of our own (own root, state, sockets and config; no clash with a system one).
#
#   scripts/containerd-env.sh start DIR [SHIM_DIR]   start it; SHIM_DIR goes first on containerd's PATH
#   scripts/containerd-env.sh stop DIR               stop it (by the pid in DIR/containerd.pid)
#   scripts/containerd-env.sh ctr DIR ARGS...        run ctr against it
#
# The socket is DIR/containerd.sock; logs go to DIR/containerd.log. The kata runtime is registered
# for CRI as handler "kata" (runtime_type io.containerd.kata.v2), with restrict_oom_score_adj,
# which this host needs (no CAP_SYS_RESOURCE); CNI (bridge, host-local, loopback) is configured
# under DIR/cni.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|ctr DIR ..." >&2; exit 2; }
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
sock="$dir/containerd.sock"

case "$cmd" in
start)
  shim_dir=${3:-}
  if [ -f "$dir/containerd.pid" ] && kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null; then
    echo "containerd-env: already running (pid $(cat "$dir/containerd.pid"))" >&2; exit 0
  fi
  # CNI for CRI pods: a bridge of this containerd's own (name, IPv4 /24 and IPv6 ULA /64 derived
  # from DIR, so two test containerds do not share one), host-local addresses for both families,
  # loopback (Debian's containernetworking-plugins). `stop` deletes the bridge; CNI removes each
  # pod's veth and netns.
  sum=$(printf '%s' "$dir" | md5sum); bridge="ks${sum:0:8}"; subnet="10.$((0x${sum:8:2} % 64 + 160)).$((0x${sum:10:2})).0/24"
  subnet6="fd6b:7377:${sum:12:4}:${sum:16:4}::/64"
  mkdir -p "$dir/cni"
  cat > "$dir/cni/10-kata-swift-test.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "kata-swift-test", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet"}], [{"subnet": "$subnet6"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
            "dataDir": "$dir/cni-ipam"}},
  {"type": "loopback"}]}
JSON
  echo "$bridge" > "$dir/cni/bridge"
  cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "localhost/pause:latest"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$dir/cni"
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"
  pod_annotations = ["io.katacontainers.*"]
  container_annotations = ["io.katacontainers.*"]
TOML
  path="$PATH"; [ -n "$shim_dir" ] && path="$(cd "$shim_dir" && pwd):$PATH"
  PATH="$path" setsid containerd --config "$dir/config.toml" > "$dir/containerd.log" 2>&1 < /dev/null &
  echo $! > "$dir/containerd.pid"
  for _ in $(seq 1 100); do
    if ctr -a "$sock" version > /dev/null 2>&1; then
      echo "containerd-env: running (pid $(cat "$dir/containerd.pid"), socket $sock)" >&2; exit 0
    fi
    kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$dir/containerd.log" >&2
  echo "containerd-env: containerd did not come up" >&2; exit 1
  ;;
stop)
  [ -f "$dir/containerd.pid" ] || exit 0
  pid=$(cat "$dir/containerd.pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/containerd.pid"
  # The CNI bridge plugin never deletes its bridge.
  if [ -f "$dir/cni/bridge" ]; then ip link del "$(cat "$dir/cni/bridge")" 2>/dev/null || true; fi
  # containerd leaves its overlay snapshot mounts behind when killed; never leave a mount.
  grep -F " $dir/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  ;;
ctr)
  shift 2
  exec ctr -a "$sock" "$@"
  ;;
*) echo "usage: $0 start|stop|ctr DIR ..." >&2; exit 2 ;;
esac
