#!/usr/bin/env bash
# Run a command with an emulated smart card in a vpcd virtual reader of the real pcscd.
#
#   with-virtual-card.sh [--profile piv|gost] [--port N] [--state DIR] [--provision]
#                        [--extra-keys] [--log] [--emulator PATH] -- COMMAND [ARGS...]
#
# * pcscd: used when running; otherwise started (as root: mkdir /run/pcscd; as a normal user
#   via `sudo -n` to chown /run/pcscd first, interop.md §1.2) and stopped again at the end.
# * port: --port, else $KLYUCH_VPCD_PORT, else 35963 ("Virtual PCD 00 00"; 35964 is reader 1).
#   An exclusive flock on $TMPDIR/klyuch-vpcd-<port>.lock serialises all users of the port
#   (the Rust harness in src/harness.rs takes the same lock).
# * emulator: --emulator, else $KLYUCH_CARD_EMULATOR, else target/{release,debug} of the
#   workspace (built with cargo if missing).
# * state: --state DIR (kept), else a temporary directory (deleted at the end).
# * COMMAND runs once the card is visible to PC/SC, with KLYUCH_READER (the reader name),
#   KLYUCH_VPCD_PORT and KLYUCH_CARD_STATE set. The script exits with its status; 77 (the
#   automake "skipped" code) when pcscd, vpcd or opensc-tool are not installed.
# Only what the script started is stopped: the emulator, and pcscd if it was not running.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

profile=piv
port="${KLYUCH_VPCD_PORT:-35963}"
state=""
emulator="${KLYUCH_CARD_EMULATOR:-}"
emu_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --state) state="$2"; shift 2 ;;
    --emulator) emulator="$2"; shift 2 ;;
    --provision|--extra-keys|--log) emu_args+=("$1"); shift ;;
    --serial|--atr) emu_args+=("$1" "$2"); shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "with-virtual-card.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "with-virtual-card.sh: no command given (use -- COMMAND)" >&2; exit 2; }

skip() { echo "SKIP: $*" >&2; exit 77; }
command -v pcscd >/dev/null 2>&1 || [ -x /usr/sbin/pcscd ] || skip "pcscd is not installed"
command -v opensc-tool >/dev/null 2>&1 || skip "opensc-tool is not installed (package opensc)"
[ -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || skip "vpcd driver missing (package vsmartcard-vpcd)"

reader="Virtual PCD 00 $(printf '%02d' $((port - 35963)))"
tmp="${TMPDIR:-/tmp}"
started_pcscd=""
emu_pid=""
temp_state=""

card_state() { # prints Yes/No for our reader
  opensc-tool -l 2>/dev/null | awk -v r="$reader" 'index($0, r) && substr($0, length($0) - length(r) + 1) == r { print $2 }'
}
wait_card() { # $1 = Yes|No
  for _ in $(seq 1 150); do
    [ "$(card_state)" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
cleanup() {
  if [ -n "$emu_pid" ]; then
    kill "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
    wait_card No || true
  fi
  if [ -n "$started_pcscd" ]; then
    kill "$started_pcscd" 2>/dev/null || true
    wait "$started_pcscd" 2>/dev/null || true
  fi
  if [ -n "$temp_state" ]; then rm -rf "$temp_state"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pcscd
pcscd_alive() { [ -S /run/pcscd/pcscd.comm ] && opensc-tool -l >/dev/null 2>&1; }
if ! pcscd_alive; then
  if [ "$(id -u)" -eq 0 ]; then
    mkdir -p /run/pcscd
  else
    sudo -n sh -c "mkdir -p /run/pcscd && chown $(id -u) /run/pcscd" \
      || skip "pcscd is not running and /run/pcscd cannot be prepared without root"
  fi
  pcscd_bin="$(command -v pcscd || echo /usr/sbin/pcscd)"
  "$pcscd_bin" --foreground >"$tmp/klyuch-pcscd.$$.log" 2>&1 &
  started_pcscd=$!
  for _ in $(seq 1 100); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.05; done
  [ -S /run/pcscd/pcscd.comm ] || { echo "pcscd did not start; see $tmp/klyuch-pcscd.$$.log" >&2; exit 1; }
fi

# emulator binary
if [ -z "$emulator" ]; then
  tdir="${CARGO_TARGET_DIR:-$root/target}"
  for c in "$tdir/release/klyuch-card-emulator" "$tdir/debug/klyuch-card-emulator"; do
    if [ -x "$c" ]; then emulator="$c"; break; fi
  done
  if [ -z "$emulator" ]; then
    (cd "$root" && cargo build -q -p klyuch-card-emulator)
    emulator="$tdir/debug/klyuch-card-emulator"
  fi
fi

# the port
exec 9>"$tmp/klyuch-vpcd-$port.lock"
flock 9

if [ -z "$state" ]; then
  state="$(mktemp -d "$tmp/klyuch-card.XXXXXX")"
  temp_state="$state"
fi
mkdir -p "$state"

"$emulator" --profile "$profile" --port "$port" --state "$state" "${emu_args[@]}" \
  2>>"$state/emulator.log" &
emu_pid=$!
if ! wait_card Yes; then
  echo "with-virtual-card.sh: no card in '$reader'; emulator log:" >&2
  cat "$state/emulator.log" >&2 || true
  exit 1
fi

set +e
KLYUCH_READER="$reader" KLYUCH_VPCD_PORT="$port" KLYUCH_CARD_STATE="$state" "$@"
rc=$?
set -e
exit $rc
