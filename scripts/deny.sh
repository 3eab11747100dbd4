#!/usr/bin/env bash
# Supply-chain check (issue 7): licenses, banned and duplicate crates, and sources with
# cargo-deny and the committed deny.toml; then the RustSec advisories when the advisory database
# can be fetched (it lives on github.com, which CI machines without internet cannot reach: the
# advisory check is skipped there with a message, never silently).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    echo "==> installing cargo-deny"
    cargo install --locked cargo-deny
fi

echo "==> cargo deny check licenses bans sources"
cargo deny check licenses bans sources

# RUSTSEC-2023-0071 (the rsa crate's timing side channel): deny.toml bans the crate; say so.
if cargo tree --workspace -i rsa >/dev/null 2>&1; then
    echo "the rsa crate is in the dependency tree (RUSTSEC-2023-0071)" >&2
    exit 1
fi

echo "==> cargo deny check advisories"
if timeout 120 cargo deny fetch db; then
    cargo deny check --disable-fetch advisories
else
    echo "SKIPPED: the RustSec advisory database (github.com/RustSec/advisory-db) cannot be" \
        "fetched from here; run scripts/deny.sh on a machine with internet for the advisory check"
fi
