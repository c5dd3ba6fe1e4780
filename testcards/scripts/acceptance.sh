#!/usr/bin/env bash
# acceptance.sh: drives the simulated cards with real, unmodified smart-card
# tools (opensc-tool, pkcs11-tool, pkcs15-tool, openssl) through pcscd, the
# way a tester would. Needs a pcscd with vpcd (see with-pcscd.sh) and
# bin/dmpagent. Prints one line per check and "N passed, N failed".
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/bin/dmpagent
module=${DMPAGENT_PKCS11_MODULE:-$(ls /usr/lib/*/opensc-pkcs11.so /usr/lib/opensc-pkcs11.so 2>/dev/null | head -1 || true)}
work=$(mktemp -d)
export DMPAGENT_SIM_DIR=$work/sim
passed=0 failed=0

cleanup() { "$bin" sim down >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

check() { # check NAME COMMAND...: passes when COMMAND succeeds
  local name=$1; shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "PASS $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; echo "$out" | sed 's/^/     /' | tail -15
  fi
}
has() { grep -q -- "$1" <<<"$2"; }

p11() { pkcs11-tool --module "$module" "$@"; }
echo -n "consent receipt" >"$work/msg"

check "sim up" "$bin" sim up
check "sim insert cps gp --reader 0" "$bin" sim insert cps gp --reader 0

atr=$(opensc-tool -r 0 -a 2>&1)
echo "     opensc-tool -r 0 -a: $atr"
check "opensc-tool -a shows the test CPS ATR" has "3b:8e:80:01:80:5c:44:4d:50:20:54:45:53:54:20:43:50:53:dc" "$atr"
name=$(opensc-tool -r 0 -n 2>&1)
echo "     opensc-tool -r 0 -n: $name"
check "opensc-tool -n names a PIV card" has "Personal Identity Verification Card" "$name"

list=$(p11 -L 2>&1)
check "pkcs11-tool -L shows a token in reader 0" has "token label" "$(grep -A2 'Virtual PCD 00 00' <<<"$list")"
objs=$(p11 -O 2>&1)
check "pkcs11-tool -O lists the authentication certificate" has "Certificate for PIV Authentication" "$objs"
objs=$(p11 --login --pin 1234 -O 2>&1)
check "pkcs11-tool --login -O lists its private key" has "PIV AUTH key" "$objs"

p11 --read-object --type cert --id 01 -o "$work/auth.der" >/dev/null 2>&1
openssl x509 -inform DER -in "$work/auth.der" -out "$work/auth.pem" 2>/dev/null
openssl x509 -in "$work/auth.pem" -pubkey -noout >"$work/auth.pub" 2>/dev/null
subject=$(openssl x509 -in "$work/auth.pem" -noout -subject -nameopt RFC2253,-esc_msb 2>&1)
echo "     $subject"
check "subject has the multi-valued CN+SN+GN" has "CN=899900063480+SN=LIBRE+GN=Max" "$subject"
check "subject has T (title) = Médecin" has "title=Médecin" "$subject"
check "openssl verify chains to the test root" openssl verify -CAfile "$DMPAGENT_SIM_DIR/pki/root.pem" \
  -untrusted "$DMPAGENT_SIM_DIR/pki/intermediates.pem" "$work/auth.pem"

check "pkcs11-tool signs SHA256-RSA-PKCS with PIN 1234" p11 --login --pin 1234 --sign -m SHA256-RSA-PKCS --id 01 \
  -i "$work/msg" -o "$work/sig"
check "openssl dgst -verify accepts the signature" openssl dgst -sha256 -verify "$work/auth.pub" -signature "$work/sig" "$work/msg"
check "pkcs11-tool signs RSA-PSS (TLS 1.3)" p11 --login --pin 1234 --sign -m SHA256-RSA-PKCS-PSS --id 01 \
  -i "$work/msg" -o "$work/sig-pss"
check "openssl verifies the PSS signature" openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1 \
  -verify "$work/auth.pub" -signature "$work/sig-pss" "$work/msg"

for i in 1 2 3; do
  out=$(p11 --login --pin 9999 -O 2>&1)
  echo "     wrong PIN $i: $(grep -o 'CKR_[A-Z_]*' <<<"$out" | head -1)"
done
check "pkcs11-tool -L says the PIN is locked" has "user PIN locked" "$(p11 -L 2>&1)"
check "the right PIN is refused once locked (CKR_PIN_LOCKED)" has "CKR_PIN_LOCKED" "$(p11 --login --pin 1234 -O 2>&1)"
check "pkcs15-tool unblocks with the PUK" pkcs15-tool --reader 0 --unblock-pin --puk 12345678 --new-pin 1234
check "PIN 1234 works again after unblock" p11 --login --pin 1234 --sign -m SHA256-RSA-PKCS --id 01 -i "$work/msg" -o "$work/sig2"

check "sim insert vitale family --reader 1" "$bin" sim insert vitale family --reader 1
vatr=$(opensc-tool -r 1 -a 2>&1)
echo "     opensc-tool -r 1 -a: $vatr"
check "opensc-tool -a shows a Vitale 2 ATR" grep -Eq '^3b:75:13:00:00:4[0-9a-f]:09:ea:90:00$' <<<"$vatr"
sel=$(opensc-tool -r 1 -s "00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45" 2>&1)
check "SELECT VITALE answers 90 00" has "SW1=0x90, SW2=0x00" "$sel"

"$bin" sim remove --reader 0 >/dev/null
t0=$(date +%s%N)
out=$(opensc-tool -r 0 -a 2>&1); rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "     after remove: opensc-tool -r 0 -a exit $rc in ${ms} ms: $(tail -1 <<<"$out")"
check "after sim remove, opensc-tool -a finds no card (within 1 s)" test "$rc" -ne 0 -a "$ms" -lt 1000

check "fault knob: present the real CPS3 ATR" "$bin" sim insert cps pharmacist --reader 0 \
  --atr "3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00"
check "opensc-tool -a shows the CPS3 ATR" has "3b:ac:00:40:2a:00:12:25:00:64:80:00:03:10:00:90:00" "$(opensc-tool -r 0 -a 2>&1)"
"$bin" sim remove --reader 0 >/dev/null

status=$("$bin" sim status 2>&1)
check "sim status" has "simulated DMP: https://" "$status"
# The simulated DMP, through real tools: mutual TLS with the gp's
# authentication key, and a SOAP fault for a request without a VIHF.
dmpurl=$(sed -n 's/^simulated DMP: \(https:[^ ]*\) .*/\1/p' <<<"$status")
hostport=$(sed -E 's#https://([^/]+)/.*#\1#' <<<"$dmpurl")
cards="$DMPAGENT_SIM_DIR/pki/cards/gp"
tls=$(openssl s_client -connect "$hostport" -CAfile "$DMPAGENT_SIM_DIR/pki/root.pem" \
  -cert "$cards/auth.crt" -key "$cards/auth.key" -cert_chain "$DMPAGENT_SIM_DIR/pki/intermediates.pem" </dev/null 2>&1)
check "openssl s_client: mutual TLS to the simulated DMP verifies (return code 0)" has "Verify return code: 0 (ok)" "$tls"
soap='<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action>urn:ihe:iti:2007:RegistryStoredQuery</a:Action><a:MessageID>urn:uuid:1</a:MessageID><a:To>x</a:To><a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo></s:Header><s:Body><q:AdhocQueryRequest xmlns:q="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/></s:Body></s:Envelope>'
fault=$(curl -s --cacert "$DMPAGENT_SIM_DIR/pki/root.pem" --cert "$cards/auth.crt" --key "$cards/auth.key" \
  -H 'Content-Type: application/soap+xml' --data "$soap" "$dmpurl/registry" 2>&1)
check "curl: a request without a VIHF gets the fault DMPInvalidVIHF" has "DMPInvalidVIHF" "$fault"
check "sim patient history on a patient without a DMP says so" has "not found" "$("$bin" sim patient history single 2>&1)"

# The agent on the configuration sim up wrote, through curl and the CLI.
conf=$DMPAGENT_SIM_DIR/agent.conf
check "sim up wrote agent.conf" has "dmp_endpoint = $dmpurl" "$(cat "$conf" 2>&1)"
"$bin" run --config "$conf" 2>"$work/agent.log" &
agent=$!
for _ in $(seq 100); do "$bin" status --config "$conf" >/dev/null 2>&1 && break; sleep 0.1; done
check "dmpagent status (admin socket)" has "outbox: 0 document" "$("$bin" status --config "$conf" 2>&1)"
token=$("$bin" token create --config "$conf" --app acceptance 2>&1)
check "token create prints only the token" grep -Eq '^dmpa_[A-Za-z0-9_-]{43}$' <<<"$token"
api=$(sed -n 's/^listen = //p' "$conf")
check "curl /v1/health without a token" has '"status":"ok"' "$(curl -s "http://$api/v1/health")"
check "curl /v1/status with the token" has '"readers"' "$(curl -s -H "Authorization: Bearer $token" "http://$api/v1/status")"
evil=$(curl -s -w '\n%{http_code}' -H 'Host: evil.example:7711' -H "Authorization: Bearer $token" "http://$api/v1/status")
check "curl with Host: evil.example is refused (403 host_forbidden)" has '"code":"host_forbidden"' "$(head -1 <<<"$evil")"
check "... with status 403" has "^403$" "$(tail -1 <<<"$evil")"
check "curl without a token is refused (401)" has "^401$" "$(curl -s -o /dev/null -w '%{http_code}' "http://$api/v1/status")"
check "dmpagent token revoke" has "revoked" "$("$bin" token revoke --config "$conf" acceptance 2>&1)"
check "the revoked token is refused (401)" has "^401$" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$api/v1/status")"
check "dmpagent audit verify" has "audit log intact" "$("$bin" audit verify --config "$conf" 2>&1)"
check "the OpenAPI document is served" has '"openapi":' "$(curl -s "http://$api/v1/openapi.json")"
kill "$agent"; wait "$agent" 2>/dev/null
check "the agent stopped on SIGTERM and said so" has "agent stopped" "$(cat "$work/agent.log")"
check "sim down" "$bin" sim down

echo "acceptance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
