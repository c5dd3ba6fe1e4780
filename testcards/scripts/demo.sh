#!/usr/bin/env bash
# demo.sh: the whole scenario on embedded defaults. For now: the simulated
# cards, and what real smart-card tools see of them. Later issues add the
# agent and the simulated DMP.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/bin/dmpagent
module=$(ls /usr/lib/*/opensc-pkcs11.so /usr/lib/opensc-pkcs11.so 2>/dev/null | head -1 || true)
export DMPAGENT_SIM_DIR=${DMPAGENT_SIM_DIR:-$root/bin/demo-sim}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

trap '"$bin" sim down >/dev/null 2>&1 || true' EXIT

step "dmpagent version"
"$bin" version
step "start the simulator (state in $DMPAGENT_SIM_DIR)"
"$bin" sim up
step "insert the GP's CPS in reader 0 and the family's Vitale card in reader 1"
"$bin" sim insert cps gp --reader 0
"$bin" sim insert vitale family --reader 1
step "readers, as OpenSC sees them (opensc-tool -l)"
opensc-tool -l
step "ATRs (opensc-tool -r N -a) and card names (-n)"
echo "reader 0: $(opensc-tool -r 0 -a)  $(opensc-tool -r 0 -n)"
echo "reader 1: $(opensc-tool -r 1 -a)"
step "the CPS as a PKCS#11 token (pkcs11-tool with $module)"
pkcs11-tool --module "$module" -L 2>/dev/null | sed -n '/Virtual PCD 00 00/,/pin min/p'
step "the CPS authentication certificate"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; "$bin" sim down >/dev/null 2>&1 || true' EXIT
pkcs11-tool --module "$module" --read-object --type cert --id 01 -o "$tmp/auth.der" >/dev/null 2>&1
openssl x509 -inform DER -in "$tmp/auth.der" -noout -subject -issuer -enddate -nameopt RFC2253,-esc_msb
openssl x509 -inform DER -in "$tmp/auth.der" -out "$tmp/auth.pem"
openssl verify -CAfile "$DMPAGENT_SIM_DIR/pki/root.pem" -untrusted "$DMPAGENT_SIM_DIR/pki/intermediates.pem" "$tmp/auth.pem"
step "a signature with the CPS key (PIN 1234), checked by openssl"
echo -n "demo" >"$tmp/msg"
pkcs11-tool --module "$module" --login --pin 1234 --sign -m SHA256-RSA-PKCS --id 01 -i "$tmp/msg" -o "$tmp/sig" 2>/dev/null
openssl x509 -in "$tmp/auth.pem" -pubkey -noout >"$tmp/pub"
openssl dgst -sha256 -verify "$tmp/pub" -signature "$tmp/sig" "$tmp/msg"
step "the Vitale card answers SELECT VITALE"
opensc-tool -r 1 -s "00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45" | tail -1
step "simulator status"
"$bin" sim status
step "take the cards out and stop the simulator"
"$bin" sim remove --reader 0
"$bin" sim remove --reader 1
"$bin" sim down
trap 'rm -rf "$tmp"' EXIT
