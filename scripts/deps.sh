#!/usr/bin/env bash
# Install what Klyuch needs to build and test on Debian 12, if it is missing. Safe to run again.
#   scripts/deps.sh          build + test dependencies
#   scripts/deps.sh --build  only what the build needs
#   scripts/deps.sh --demo   what scripts/demo.sh needs
set -euo pipefail

build_pkgs=(pkgconf libpcsclite-dev gcc libc6-dev)
test_pkgs=(
  openssl opensc softhsm2 gnutls-bin libnss3-tools p11-kit libp11-kit-dev
  libengine-pkcs11-openssl libengine-gost-openssl libssl-dev
  pcscd pcsc-tools vsmartcard-vpcd yubico-piv-tool procps
  # scripts/sanitizers.sh (memcheck)
  valgrind
  # interoperability tests (tests/tests/{nss,openssl,gnutls,p11kit,java,browsers}.rs)
  poppler-utils curl openjdk-17-jdk-headless xmlsec1 chromium firefox-esr xvfb xdotool
)
demo_pkgs=(openssl opensc libengine-gost-openssl)
pkgs=("${build_pkgs[@]}")
case "${1:-}" in
  --build) ;;
  --demo) pkgs+=("${demo_pkgs[@]}") ;;
  *) pkgs+=("${test_pkgs[@]}") ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -z "${1:-}" ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
