#!/usr/bin/env bash
# Memory-error checks of the module (issue 7, item 2):
#   1. AddressSanitizer (+ LeakSanitizer): the pkcs11-module unit tests built with
#      -Zsanitizer=address, and the C ABI tests (tests/tests/abi.rs, tests/c/abi_check.c built
#      with -fsanitize=address) against the module built with -Zsanitizer=address. Only the
#      stable toolchain exists here: RUSTC_BOOTSTRAP=1 lets it take the flag. The standard
#      library is not rebuilt (-Zbuild-std needs rust-src, which cannot be installed offline),
#      so std's own code is not instrumented; Klyuch's code and its dependencies (aws-lc's C
#      code too: the cc crate passes -fsanitize=address on) are. fuzz/lsan.supp lists the one
#      leak by design.
#   2. valgrind memcheck on the normal release module: `pkcs11-tool --test` on a soft token with
#      an RSA and an EC key, and the integration tests tests/tests/{tokens,objects,mechanisms}.rs,
#      with no memcheck error (scripts/sanitizers/valgrind.supp says why each suppression is
#      there).
#   scripts/sanitizers.sh [asan|valgrind]    both when no argument
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
host="$(rustc -vV | sed -n 's/^host: //p')"
supp="$PWD/scripts/sanitizers"

if [ "$what" = all ] || [ "$what" = asan ]; then
  echo "==> AddressSanitizer: pkcs11-module unit tests, tests/tests/abi.rs"
  # --target: the sanitizer flags then apply to the target code only, not to build scripts and
  # proc macros. A separate target folder keeps the normal build untouched.
  asan=(env RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR="$PWD/target/asan")
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0"
  "${asan[@]}" cargo nextest run --release --target "$host" --no-fail-fast -p pkcs11-module --lib
  "${asan[@]}" cargo build --release --target "$host" -p pkcs11-module
  # The C ABI tests: the normal test binary drives the instrumented module, in its own process
  # (through cryptoki) and in tests/c/abi_check.c built with -fsanitize=address. Rust links
  # the ASan runtime into executables only, so the module takes it from gcc's libasan, preloaded
  # into the test binary (tests/tests/abi.rs keeps it away from the compiler it runs).
  cargo build --release -p klyuch-tests --tests
  libasan="$(gcc -print-file-name=libasan.so)"
  env "CARGO_TARGET_$(echo "$host" | tr 'a-z-' 'A-Z_')_RUNNER=env LD_PRELOAD=$libasan" \
    KLYUCH_TEST_MODULE="$PWD/target/asan/$host/release/libklyuch_pkcs11.so" \
    KLYUCH_ABI_CFLAGS="-fsanitize=address -fno-omit-frame-pointer" \
    cargo nextest run --release --no-fail-fast -p klyuch-tests --test abi
  unset ASAN_OPTIONS LSAN_OPTIONS
fi

if [ "$what" = all ] || [ "$what" = valgrind ]; then
  command -v valgrind >/dev/null || { echo "valgrind is missing (scripts/deps.sh)" >&2; exit 1; }
  echo "==> valgrind memcheck: pkcs11-tool --test, tests/tests/{tokens,objects,mechanisms}.rs"
  cargo build --release -p pkcs11-module
  module="$PWD/target/release/libklyuch_pkcs11.so"
  vg=(valgrind --tool=memcheck --error-exitcode=99 --quiet --num-callers=30
      --suppressions="$supp/valgrind.supp" --gen-suppressions=all)
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  export KLYUCH_TOKEN_DIR="$tmp/tokens" KLYUCH_CONF="$tmp/klyuch.toml" KLYUCH_PCSC=0
  printf '[softtoken]\nkdf_iterations = 1000\n' > "$KLYUCH_CONF"
  p11=(pkcs11-tool --module "$module")
  "${p11[@]}" --init-token --slot 0 --label valgrind --so-pin 12345678 >/dev/null
  tok=("${p11[@]}" --token-label valgrind)
  "${tok[@]}" --login --login-type so --so-pin 12345678 --init-pin --pin 1234 >/dev/null
  "${tok[@]}" --login --pin 1234 --keypairgen --key-type rsa:2048 --id 01 --label rsa >/dev/null
  "${tok[@]}" --login --pin 1234 --keypairgen --key-type EC:prime256v1 --id 02 --label ec >/dev/null
  "${vg[@]}" "${tok[@]}" --login --pin 1234 --test
  unset KLYUCH_TOKEN_DIR KLYUCH_CONF KLYUCH_PCSC
  # The test binaries load the module in-process (cryptoki): run them under memcheck. The
  # standard tools some tests start are not traced (their own memory is not ours to check).
  runner="CARGO_TARGET_$(echo "$host" | tr 'a-z-' 'A-Z_')_RUNNER"
  env "$runner=${vg[*]}" cargo nextest run --release --no-fail-fast \
    -p klyuch-tests --test tokens --test objects --test mechanisms
fi
echo "==> sanitizers: no errors"
