#!/usr/bin/env bash
# Fuzzes every target of kata-fuzz (or those named) for FUZZ_SECONDS each, then merges inputs that
# add coverage into Tests/Fuzz/corpus/<target>/. docs/fuzzing.md explains the build and the layout.
#   scripts/fuzz.sh build            the fuzz build only (.build-fuzz); prints the binary's path
#   scripts/fuzz.sh merge [target...]  merge .build-fuzz/corpus/<target> into the committed corpus
#   scripts/fuzz.sh [target...]      build, fuzz, merge, print a summary line per target
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
SCRATCH=.build-fuzz
RUNTIME_DIR=$(dirname "$(command -v swiftc)")/../lib/clang
FUZZER_LIB=$(ls "$RUNTIME_DIR"/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | sort -V | tail -1)
[[ -n "$FUZZER_LIB" ]] || { echo "fuzz: libclang_rt.fuzzer_no_main not found under $RUNTIME_DIR" >&2; exit 1; }

# Every Swift module gets -O, the address sanitizer and libFuzzer's coverage; KATA_FUZZ selects
# the main that hands over to LLVMFuzzerRunDriver from libFuzzer's no-main runtime. (-Onone runs
# these targets 1.8 (config) to 3.8 (ttrpc) times slower.)
FLAGS=(--scratch-path "$SCRATCH" --product kata-fuzz
  -Xswiftc -O -Xswiftc -sanitize=address
  -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table
  -Xswiftc -DKATA_FUZZ
  -Xlinker "$FUZZER_LIB" -Xlinker -lstdc++)

build() {
  echo "fuzz: swift build ${FLAGS[*]}" >&2
  swift build "${FLAGS[@]}" >&2
  echo "$(swift build "${FLAGS[@]}" --show-bin-path)/kata-fuzz"
}

mode=fuzz
case "${1:-}" in
  build) build; exit 0 ;;
  merge) mode=merge; shift ;;
esac

bin=$(build)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <("$bin" list | cut -d' ' -f1)
mkdir -p "$SCRATCH/tmp"
export TMPDIR="$PWD/$SCRATCH/tmp"
summary=()
for target in "${targets[@]}"; do
  max_len=$("$bin" list | awk -v t="$target" '$1 == t { print $2 }')
  work="$SCRATCH/corpus/$target" crashes="$SCRATCH/crashes/$target"
  mkdir -p "$work" "$crashes" "Tests/Fuzz/corpus/$target"
  log="$SCRATCH/$target.log"
  status=0
  if [[ $mode == fuzz ]]; then
    echo "fuzz: $target for ${SECONDS_PER_TARGET}s (log $log)" >&2
    nice -n 15 "$bin" "$target" "$work" "Tests/Fuzz/corpus/$target" \
      -max_total_time="$SECONDS_PER_TARGET" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$crashes/" >"$log" 2>&1 || status=$?
  fi
  # Keep only the inputs that add coverage to the committed corpus.
  nice -n 15 "$bin" "$target" -merge=1 -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    "Tests/Fuzz/corpus/$target" "$work" >"$SCRATCH/$target.merge.log" 2>&1 || true
  added=$(sed -nE 's/^MERGE-OUTER: ([0-9]+) new files.*/\1/p' "$SCRATCH/$target.merge.log")
  runs=$(awk '/^stat::number_of_executed_units:/ { print $2 }' "$log" 2>/dev/null)
  cov=$(grep -E '^#[0-9]+' "$log" 2>/dev/null | tail -1 | sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+).*/\1 \2/p')
  set -- $cov
  summary+=("$(printf '%-11s %5ss %10s execs  cov %-5s ft %-6s  corpus %4s (+%s)  crashes %s  exit %s' \
    "$target" "$([[ $mode == fuzz ]] && echo "$SECONDS_PER_TARGET" || echo -)" "${runs:-?}" "${1:-?}" "${2:-?}" \
    "$(ls "Tests/Fuzz/corpus/$target" | wc -l)" "${added:-?}" "$(ls "$crashes" | wc -l)" "$status")")
done
printf '%s\n' "${summary[@]}"
