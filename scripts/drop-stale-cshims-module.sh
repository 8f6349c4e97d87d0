#!/usr/bin/env bash
# CShims exports an umbrella directory (Sources/CShims/include): clang's cached module does not
# notice a header added there, and the next build fails with "cannot find 'ks_...' in scope".
# Drops every cached CShims module older than the newest header, so builds pick new headers up.
#
#   scripts/drop-stale-cshims-module.sh BUILD_DIR...
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
newest=$(ls -t "$here"/Sources/CShims/include/*.h | head -1)
for dir in "$@"; do
  [ -d "$dir" ] || continue
  find "$dir" -name 'CShims-*.pcm' ! -newer "$newest" -delete
done
