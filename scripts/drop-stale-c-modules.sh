#!/usr/bin/env bash
# Each C target (Sources/C*/) exports an umbrella directory (its include/): clang's cached module
# does not notice a header added there, and the next build fails with "cannot find 'ks_...' in
# scope". Drops every cached module of a C target older than that target's newest header, so
# builds pick new headers up.
#
#   scripts/drop-stale-c-modules.sh BUILD_DIR...
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
for include in "$here"/Sources/C*/include; do
  target=$(basename "$(dirname "$include")")
  newest=$(ls -t "$include"/*.h | head -1)
  for dir in "$@"; do
    [ -d "$dir" ] || continue
    find "$dir" -name "$target-*.pcm" ! -newer "$newest" -delete
  done
done
