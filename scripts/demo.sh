#!/usr/bin/env bash
# The main job of Klyuch, on a soft token, with standard software only:
#   1. insert a token (create and initialise a soft token),  2. set the PIN,
#   3. generate a key pair on the token,  4. get a certificate for it from a (local test) CA,
#   5. sign a document with the token key (CMS/PKCS#7, detached, as signing clients do),
#   6. verify the signature with OpenSSL.
# Every step prints the command it runs. Installs missing Debian packages, builds in release mode.
#
#   scripts/demo.sh [WORKDIR]     (default: a new temporary folder, kept for inspection)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

scripts/deps.sh --demo

echo "==> building libklyuch_pkcs11.so and klyuch (release)"
cargo build --release -p pkcs11-module -p klyuch

WORK=${1:-$(mktemp -d /tmp/klyuch-demo.XXXXXX)}
mkdir -p "$WORK"
cd "$WORK"
MODULE=$ROOT/target/release/libklyuch_pkcs11.so
KLYUCH=$ROOT/target/release/klyuch
export KLYUCH_MODULE=$MODULE
export KLYUCH_TOKEN_DIR=$WORK/tokens   # the soft token store of this demo
export KLYUCH_PCSC=0                   # soft token only (no card readers)
export PKCS11_MODULE_PATH=$MODULE      # for OpenSSL's pkcs11 engine
SO_PIN=87654321
PIN=12345678
LABEL="Klyuch Demo"

run() {
  echo
  echo "\$ $*"
  "$@"
}
step() {
  echo
  echo "=== $* ==="
}

step "1. Insert the token: a new soft token in $KLYUCH_TOKEN_DIR"
run "$KLYUCH" slots

step "2. Initialise it with an SO PIN and set the user PIN"
run "$KLYUCH" token init --label "$LABEL" --so-pin "$SO_PIN" --init-pin --pin "$PIN"
run "$KLYUCH" slots

step "3. Generate an ECDSA P-256 key pair on the token (the private key never leaves it)"
run pkcs11-tool --module "$MODULE" --token-label "$LABEL" --login --pin "$PIN" \
  --keypairgen --key-type EC:prime256v1 --id 01 --label signer

step "4. Get a certificate: a local test CA certifies the token key"
# The CA (a file key here; a real one is a CA's business). The certificate request is signed by
# the token key through OpenSSL's pkcs11 engine: the CA sees proof of possession.
run openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
  -subj "/O=Klyuch Demo/CN=Klyuch Demo CA" -days 30 -out ca.pem
KEY_URI="pkcs11:token=Klyuch%20Demo;object=signer;type=private;pin-value=$PIN"
run openssl req -new -engine pkcs11 -keyform engine -key "$KEY_URI" \
  -subj "/O=Klyuch Demo/CN=Ivan Petrov" -out signer.csr
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=emailProtection\n' > ee.ext
run openssl x509 -req -in signer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
  -extfile ee.ext -out signer.pem
run "$KLYUCH" import signer.pem --id 01 --label signer --pin "$PIN"
run "$KLYUCH" objects --login --pin "$PIN"

step "5. Sign a document with the token key (detached CMS signature)"
printf 'Заявление\nПрошу выдать справку.\nИ. Петров, %s\n' "$(date +%F)" > document.txt
run openssl cms -sign -engine pkcs11 -keyform engine -inkey "$KEY_URI" -signer signer.pem \
  -md sha256 -binary -in document.txt -outform DER -out document.p7s

step "6. Verify the signature with OpenSSL (and see a changed document fail)"
run openssl cms -verify -CAfile ca.pem -inform DER -in document.p7s -content document.txt \
  -binary -out /dev/null
cp document.txt changed.txt
echo "one more line" >> changed.txt
echo
echo "\$ openssl cms -verify ... -content changed.txt"
if openssl cms -verify -CAfile ca.pem -inform DER -in document.p7s -content changed.txt \
  -binary -out /dev/null 2>/dev/null; then
  echo "ERROR: a changed document verified" >&2
  exit 1
fi
echo "Verification failure (as it must be for a changed document)"

echo
echo "Done: the document, its signature and the certificates are in $WORK"
