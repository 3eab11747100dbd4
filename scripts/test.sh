#!/usr/bin/env bash
# Run every Klyuch test: unit tests of each crate, the integration tests that drive the built
# libklyuch_pkcs11.so through cryptoki, C and the standard tools (pkcs11-tool, OpenSSL, GnuTLS,
# NSS), and the PC/SC tests through the real pcscd with the vpcd virtual reader and the card
# emulator. Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/pcscd.sh

echo "==> building (release)"
cargo build --release --workspace --all-targets

echo "==> tests"
# nextest runs each test in its own process: the module is process-wide state.
cargo nextest run --release --workspace --no-fail-fast "$@"

# Supply chain: cargo-deny (licenses, bans, sources; advisories when the database is reachable).
scripts/deny.sh
