#!/usr/bin/env bash
# Make sure a pcscd is running (no systemd needed): as root it is started directly; as a normal
# user /run/pcscd is created and handed over with sudo first. Prints nothing when one already runs.
# pcscd listens on the fixed socket /run/pcscd/pcscd.comm; with vsmartcard-vpcd installed it
# offers the virtual readers "Virtual PCD 00 00" (TCP 35963) and "Virtual PCD 00 01" (35964).
set -euo pipefail
# One caller at a time: two starting together would each start a pcscd (seen: the second one
# rebinds the socket path and the first lingers on an unlinked socket).
exec 9>"${TMPDIR:-/tmp}/klyuch-pcscd.lock"
flock 9
if [ -S /run/pcscd/pcscd.comm ] && pgrep -x pcscd >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p /run/pcscd
  nohup pcscd --foreground >"${PCSCD_LOG:-/tmp/klyuch-pcscd.log}" 2>&1 &
else
  sudo mkdir -p /run/pcscd
  sudo chown "$(id -u)" /run/pcscd
  nohup pcscd --foreground >"${PCSCD_LOG:-/tmp/klyuch-pcscd.log}" 2>&1 &
fi
for _ in $(seq 1 100); do
  [ -S /run/pcscd/pcscd.comm ] && exit 0
  sleep 0.05
done
echo "pcscd did not start; see ${PCSCD_LOG:-/tmp/klyuch-pcscd.log}" >&2
exit 1
