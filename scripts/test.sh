#!/usr/bin/env bash
# Run every Klyuch test (the README's test command; .ci/run execs it), one line per stage:
#   deps + build   Debian packages (scripts/deps.sh), then the release build of the workspace
#   tests          unit tests of each crate and the integration tests that drive the built
#                  libklyuch_pkcs11.so through cryptoki, C, pkcs11-tool (nextest: each test in
#                  its own process, the module is process-wide state); no daemons
#   interop        scripts/interop.sh: NSS, browsers, OpenSSL, GnuTLS, p11-kit, Java, GOST,
#                  klyuch register and the PC/SC path (pcscd + vpcd + the card emulator)
#   supply chain   scripts/deny.sh (cargo-deny)
# Extra arguments go to both nextest runs (not -E: nextest ORs filters; use scripts/interop.sh -E).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every stage runs even when an earlier one failed (one CI run shows every failure); the exit
# status is non-zero when any failed, and the failed stages are named at the end.
failed=()
stage() {
  local name=$1 t0=$SECONDS
  shift
  echo "==> stage: $name"
  if "$@"; then
    echo "==> stage done: $name ($((SECONDS - t0)) s)"
  else
    echo "==> stage FAILED: $name ($((SECONDS - t0)) s)"
    failed+=("$name")
  fi
}
echo "==> stage: deps + build"; scripts/deps.sh; cargo build --release --workspace --all-targets
stage "tests" cargo nextest run --release --workspace --no-fail-fast -E "not ($(scripts/interop.sh --filter))" "$@"
stage "interop" scripts/interop.sh "$@"
stage "supply chain (cargo-deny: licenses, bans, sources; advisories when reachable)" scripts/deny.sh
stage "hardening: fuzzing, 15 s per target (fuzz/README.md)" scripts/fuzz.sh 15
stage "hardening: AddressSanitizer and valgrind memcheck" scripts/sanitizers.sh
if [ ${#failed[@]} -gt 0 ]; then
  printf '==> FAILED stages:'; printf ' [%s]' "${failed[@]}"; echo
  exit 1
fi
echo "==> all stages passed"
