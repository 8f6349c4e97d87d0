#!/usr/bin/env bash
# Regenerates the committed Swift protobuf and ttrpc service code (make protos).
#  - Protos/*.proto: our own protos (the ttrpc envelope).
#  - containerd 1.6's API: copied from Debian's golang-*-dev packages into a temp dir,
#    stripped of gogo/fieldpath options (scripts/protogen/strip_gogo.py), never committed.
# Tools: protoc (protobuf-compiler), protoc-gen-swift 1.39.0 built once into
# $KATA_SWIFT_CACHE (default /var/cache/kata-swift), python3-protobuf for the service generator.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGS_VERSION=1.39.0
CACHE=${KATA_SWIFT_CACHE:-/var/cache/kata-swift}/protoc-gen-swift-$PGS_VERSION
PLUGIN=$CACHE/protoc-gen-swift
PYTHON=/usr/bin/python3 # Debian's, which sees python3-protobuf
GOSRC=/usr/share/gocode/src
CONTAINERD=github.com/containerd/containerd
CGROUPS=github.com/containerd/cgroups

# Each line: <proto path inside the work dir> <Swift file name> <target dir> <visibility>
GENERATED=(
  "ttrpc.proto                                    ttrpc                     Sources/TTRPC/Generated         Internal"
  "google/rpc/status.proto                        google_rpc_status         Sources/TTRPC/Generated         Public"
  "$CONTAINERD/runtime/v2/task/shim.proto         containerd_task_v2_shim   Sources/ContainerdAPI/Generated Public"
  "$CONTAINERD/api/types/mount.proto              containerd_types_mount    Sources/ContainerdAPI/Generated Public"
  "$CONTAINERD/api/types/task/task.proto          containerd_types_task     Sources/ContainerdAPI/Generated Public"
  "$CONTAINERD/api/events/task.proto              containerd_events_task    Sources/ContainerdAPI/Generated Public"
  "$CONTAINERD/api/services/ttrpc/events/v1/events.proto containerd_events_ttrpc_v1 Sources/ContainerdAPI/Generated Public"
  "$CONTAINERD/pkg/runtimeoptions/v1/api.proto    runtimeoptions_v1         Sources/ContainerdAPI/Generated Public"
  "$CGROUPS/stats/v1/metrics.proto                cgroups_v1_metrics        Sources/ContainerdAPI/Generated Public"
  "$CGROUPS/v2/stats/metrics.proto                cgroups_v2_metrics        Sources/ContainerdAPI/Generated Public"
)

build_plugin() {
  [ -x "$PLUGIN" ] && return
  echo "gen-protos: building protoc-gen-swift $PGS_VERSION into $CACHE (about 2 minutes)"
  local src
  src=$(mktemp -d)
  git clone -q -c advice.detachedHead=false -b "$PGS_VERSION" https://github.com/apple/swift-protobuf "$src/swift-protobuf"
  (cd "$src/swift-protobuf" && swift build -c release --product protoc-gen-swift >/dev/null)
  mkdir -p "$CACHE"
  install -m 0755 "$src/swift-protobuf/.build/release/protoc-gen-swift" "$PLUGIN.tmp"
  mv "$PLUGIN.tmp" "$PLUGIN"
  rm -rf "$src"
}

stage_protos() { # copies every proto into $WORK at its import path
  local work=$1
  cp "$ROOT"/Protos/ttrpc.proto "$work/"
  mkdir -p "$work/google/rpc"
  cp "$GOSRC/github.com/gogo/googleapis/google/rpc/status.proto" "$work/google/rpc/"
  local p
  for p in "$CONTAINERD/runtime/v2/task/shim.proto" "$CONTAINERD/api/types/mount.proto" \
    "$CONTAINERD/api/types/task/task.proto" "$CONTAINERD/api/events/task.proto" \
    "$CONTAINERD/api/services/ttrpc/events/v1/events.proto" "$CONTAINERD/pkg/runtimeoptions/v1/api.proto" \
    "$CGROUPS/stats/v1/metrics.proto" "$CGROUPS/v2/stats/metrics.proto"; do
    mkdir -p "$work/$(dirname "$p")"
    cp "$GOSRC/$p" "$work/$p"
  done
  find "$work" -name '*.proto' -print0 | xargs -0 "$PYTHON" "$ROOT/scripts/protogen/strip_gogo.py"
}

main() {
  command -v protoc >/dev/null || { echo "gen-protos: protoc missing (scripts/install-deps.sh)" >&2; exit 1; }
  "$PYTHON" -c 'import google.protobuf' 2>/dev/null ||
    { echo "gen-protos: python3-protobuf missing (scripts/install-deps.sh)" >&2; exit 1; }
  build_plugin

  work=$(mktemp -d) # global: the EXIT trap runs after main returns
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/in" "$work/out"
  stage_protos "$work/in"

  local line proto name dir vis all=()
  for line in "${GENERATED[@]}"; do
    read -r proto name dir vis <<<"$line"
    all+=("$proto")
    mkdir -p "$work/out/$name"
    protoc --plugin=protoc-gen-swift="$PLUGIN" -I "$work/in" -I /usr/include \
      --swift_out="Visibility=$vis,FileNaming=DropPath:$work/out/$name" "$proto"
  done
  protoc -I "$work/in" -I /usr/include --include_imports --include_source_info \
    --descriptor_set_out="$work/all.pb" "${all[@]}"

  # Replace the old generated files only once everything above succeeded.
  local dirs=()
  for line in "${GENERATED[@]}"; do
    read -r proto name dir vis <<<"$line"
    dirs+=("$dir")
  done
  mapfile -t dirs < <(printf '%s\n' "${dirs[@]}" | sort -u)
  for dir in "${dirs[@]}"; do
    rm -rf "${ROOT:?}/$dir"
    mkdir -p "$ROOT/$dir"
  done
  for line in "${GENERATED[@]}"; do
    read -r proto name dir vis <<<"$line"
    mv "$work/out/$name/"*.pb.swift "$ROOT/$dir/$name.pb.swift"
    # Typed ttrpc services, for the files that declare any.
    "$PYTHON" "$ROOT/scripts/protogen/ttrpc_gen.py" --visibility "${vis,,}" "$work/all.pb" "$ROOT/$dir" "$proto=$name"
  done
  echo "gen-protos: wrote $(cd "$ROOT" && find "${dirs[@]}" -name '*.swift' | wc -l) files into ${dirs[*]}"
}

main "$@"
