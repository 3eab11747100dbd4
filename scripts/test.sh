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

stage() { echo "==> stage: $1"; }
stage "deps + build"; scripts/deps.sh; cargo build --release --workspace --all-targets
stage "tests"; cargo nextest run --release --workspace --no-fail-fast -E "not ($(scripts/interop.sh --filter))" "$@"
stage "interop"; scripts/interop.sh "$@"
stage "supply chain (cargo-deny: licenses, bans, sources; advisories when reachable)"; scripts/deny.sh
stage "hardening: fuzzing, 15 s per target (fuzz/README.md)"; scripts/fuzz.sh 15
stage "hardening: AddressSanitizer and valgrind memcheck"; scripts/sanitizers.sh
