#!/usr/bin/env bash
# The main job of Klyuch, on a soft token, with standard software only and a GOST R 34.10-2012
# (256-bit, CryptoPro-A = tc26-256-B curve) key:
#   1. insert a token (create and initialise a soft token),  2. set the PIN,
#   3. generate a GOST key pair on the token (pkcs11-tool),
#   4. get a certificate for it from a (local test) GOST CA made with OpenSSL's GOST engine,
#   5. sign a document with the token key (pkcs11-tool, GOSTR3410-WITH-GOSTR3411-12-256),
#   6. verify the signature with OpenSSL's GOST engine against the certificate's public key,
#   7. the same as the portal wants it: a detached CMS signature (klyuch sign), verified by
#      openssl cms -engine gost and by klyuch verify; a changed document fails.
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
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
MODULE=$TARGET/release/libklyuch_pkcs11.so
KLYUCH=$TARGET/release/klyuch
export KLYUCH_MODULE=$MODULE
export KLYUCH_TOKEN_DIR=$WORK/tokens   # the soft token store of this demo
export KLYUCH_PCSC=0                   # soft token only (no card readers)
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

step "3. Generate a GOST R 34.10-2012 256-bit key pair on the token (the private key never leaves it)"
# GOSTR3410-2012-256:B is pkcs11-tool's name for the CryptoPro-A parameter set (= tc26-256-B).
run pkcs11-tool --module "$MODULE" --token-label "$LABEL" --login --pin "$PIN" \
  --keypairgen --key-type GOSTR3410-2012-256:B --id 01 --label signer

step "4. Get a certificate: a local GOST test CA certifies the token key"
# The CA (a file key here; a real one is a CA's business), made with OpenSSL's GOST engine.
run openssl req -x509 -new -engine gost -newkey gost2012_256 -pkeyopt paramset:A -nodes \
  -keyout ca.key -subj "/O=Klyuch Demo/CN=Klyuch Demo GOST CA" -days 3650 -out ca.pem
# The certification request is signed by the token key through PKCS#11 C_Sign: the CA sees
# proof of possession.
run "$KLYUCH" csr --id 01 --subject "/C=RU/O=Klyuch Demo/CN=Ivan Petrov" --pin "$PIN" \
  --out signer.csr
run openssl req -engine gost -in signer.csr -verify -noout -subject
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=emailProtection\n' > ee.ext
run openssl x509 -req -engine gost -in signer.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -days 365 -extfile ee.ext -out signer.pem
run openssl verify -engine gost -CAfile ca.pem signer.pem
run "$KLYUCH" import signer.pem --id 01 --label signer --pin "$PIN"
run "$KLYUCH" objects --login --pin "$PIN"

step "5. Sign a document with the token key (GOST R 34.10-2012 with Streebog-256, through pkcs11-tool)"
printf 'Заявление\nПрошу выдать справку.\nИ. Петров, %s\n' "$(date +%F)" > document.txt
run pkcs11-tool --module "$MODULE" --token-label "$LABEL" --login --pin "$PIN" \
  --sign -m GOSTR3410-WITH-GOSTR3411-12-256 --id 01 -i document.txt -o document.sig

step "6. Verify the signature with OpenSSL's GOST engine (and see a changed document fail)"
run openssl x509 -engine gost -in signer.pem -pubkey -noout -out signer.pub
run openssl dgst -engine gost -md_gost12_256 -verify signer.pub -signature document.sig \
  document.txt
cp document.txt changed.txt
echo "one more line" >> changed.txt
echo
echo "\$ openssl dgst -engine gost -md_gost12_256 -verify signer.pub -signature document.sig changed.txt"
if openssl dgst -engine gost -md_gost12_256 -verify signer.pub -signature document.sig \
  changed.txt 2>/dev/null; then
  echo "ERROR: a changed document verified" >&2
  exit 1
fi

step "7. The portal's format: a detached CMS (CAdES-BES) signature, checked by OpenSSL and klyuch"
run "$KLYUCH" sign --key "pkcs11:token=$LABEL;id=%01" --pin "$PIN" document.txt -o document.txt.sig
run openssl cms -verify -engine gost -binary -inform DER -in document.txt.sig -content document.txt \
  -CAfile ca.pem -out /dev/null
run "$KLYUCH" verify document.txt.sig --content document.txt --ca ca.pem
echo
echo "\$ klyuch verify document.txt.sig --content changed.txt --ca ca.pem"
if "$KLYUCH" verify document.txt.sig --content changed.txt --ca ca.pem; then
  echo "ERROR: a changed document verified" >&2
  exit 1
fi

echo
echo "Done: the document, its signatures and the certificates are in $WORK"
