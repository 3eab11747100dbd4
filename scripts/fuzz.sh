#!/usr/bin/env bash
# Run every cargo-fuzz target (fuzz/fuzz_targets/) for a short budget, starting from the
# committed seed corpus (fuzz/corpus/<target>/); fails on the first crash, leak, timeout or
# out-of-memory, leaving the input in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 15 (CI); see fuzz/README.md for long runs
#
# libFuzzer needs nightly-only rustc flags (-Zsanitizer=address, sanitizer coverage): the stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1. New corpus entries go to fuzz/work/ (ignored),
# never into the committed seeds. -len_control=0: full-length inputs from the start (a short
# run would otherwise spend its budget on inputs of a few bytes: a few PKCS#11 calls at most).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# The build flags of every `cargo fuzz` call below (the same flags reuse the same build).
build=(--release --codegen-units 16)
cd fuzz
echo "==> building the fuzz targets"
cargo fuzz build "${build[@]}"

# The targets' temporary token stores, removed however the run ends.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/klyuch-fuzz.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export TMPDIR="$tmp"
# LeakSanitizer: see the file for why each entry is there.
export LSAN_OPTIONS="suppressions=$PWD/lsan.supp:print_suppressions=0"

for t in $(cargo fuzz list); do
  echo "==> fuzzing $t for ${secs}s"
  mkdir -p "work/$t"
  if ! cargo fuzz run "${build[@]}" "$t" "work/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
      -max_len=4096 -len_control=0 \
      2> "$tmp/$t.log"; then
    tail -n 60 "$tmp/$t.log"
    echo "FAIL: fuzz target $t found a problem; the input is in fuzz/artifacts/$t/" >&2
    echo "      reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${build[*]} $t fuzz/artifacts/$t/<file>" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+|stat::number_of_executed_units|stat::peak_rss_mb)' "$tmp/$t.log" | tail -n 3
done
echo "==> fuzzing: no findings"
