#!/usr/bin/env bash
# The interoperability stage (issue 5): Klyuch with the software people use — NSS (certutil,
# modutil, cmsutil, pdfsig), Chromium and Firefox under Xvfb, OpenSSL with the pkcs11 and GOST
# engines, curl, GnuTLS, p11-kit (proxy, server, client), Java (keytool, jarsigner, XMLDSig
# checked by xmlsec1), `klyuch register`, and the PC/SC tests (pcscd + vpcd + the card
# emulator). Run after the unit and integration tests (scripts/test.sh), on a release build:
#   scripts/interop.sh [NEXTEST ARGS...]     e.g. scripts/interop.sh -E 'test(pdfsig)' (-E narrows
#                                            the stage to the tests it matches)
#   scripts/interop.sh --filter              print the nextest filter of these tests
# Starts pcscd when none runs and stops exactly that one at the end; the tests start (and stop)
# their own Xvfb displays, TLS servers, p11-kit servers and emulated cards. Each test prints what
# it checked (nextest --success-output immediate); the stage prints its time at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

# The test binaries of this stage (package::binary, nextest's binary IDs).
FILTER='binary_id(klyuch-tests::nss) | binary_id(klyuch-tests::browsers) | binary_id(klyuch-tests::openssl) | binary_id(klyuch-tests::gnutls) | binary_id(klyuch-tests::p11kit) | binary_id(klyuch-tests::java) | binary_id(klyuch-tests::gost) | binary_id(klyuch-tests::pcsc) | binary_id(klyuch-tests::cli_card) | binary_id(klyuch-tests::register) | binary_id(klyuch-card-emulator::pcsc_piv) | binary_id(klyuch-card-emulator::pcsc_gost) | binary_id(pcsc-backend::pcscd) | (binary_id(klyuch-tests::cms) & test(emulated))'
if [ "${1:-}" = "--filter" ]; then
  echo "$FILTER"
  exit 0
fi

# A filter given here narrows the stage (nextest would OR several -E together).
args=()
expr="$FILTER"
while [ $# -gt 0 ]; do
  case "$1" in
    -E | --filterset | --filter-expr) expr="($FILTER) & ($2)"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

start=$(date +%s%N)
started_pcscd=""
cleanup() {
  if [ -n "$started_pcscd" ] && kill -0 "$started_pcscd" 2>/dev/null; then
    echo "==> interop: stopping the pcscd this stage started (pid $started_pcscd)"
    kill "$started_pcscd" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$started_pcscd" 2>/dev/null || break; sleep 0.05; done
  fi
}
trap cleanup EXIT

if [ -S /run/pcscd/pcscd.comm ] && pgrep -x pcscd >/dev/null; then
  echo "==> interop: using the pcscd that is already running"
else
  scripts/pcscd.sh
  # pcscd writes its PID there; no other pcscd ran a moment ago, so this one is ours.
  started_pcscd=$(cat /run/pcscd/pcscd.pid 2>/dev/null || pgrep -nx pcscd || true)
  echo "==> interop: started pcscd (pid ${started_pcscd:-?})"
fi

# The card emulator and the klyuch tool are used as programs by these tests. The whole workspace,
# as scripts/test.sh builds it (nothing to do after its build stage): a build of only some
# packages resolves their features alone and would rebuild, and replace, the module.
cargo build --release --workspace --all-targets

rc=0
cargo nextest run --release -p klyuch-tests -p klyuch-card-emulator -p pcsc-backend --no-fail-fast \
  --success-output immediate --failure-output final --status-level pass \
  -E "$expr" "${args[@]}" || rc=$?

ms=$((($(date +%s%N) - start) / 1000000))
printf '==> interop stage: %d.%d s (exit status %d)\n' $((ms / 1000)) $((ms % 1000 / 100)) "$rc"
exit "$rc"
