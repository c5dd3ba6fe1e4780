#!/usr/bin/env bash
# demo.sh: the whole story on embedded defaults — emulated cards in the real
# PC/SC stack, the simulated DMP, and the agent — driven through the agent's
# API by the dmpagent command line (which uses nothing but agent/client).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/bin/dmpagent
export DMPAGENT_SIM_DIR=${DMPAGENT_SIM_DIR:-$root/bin/demo-sim}
export DMPAGENT_CONFIG=$DMPAGENT_SIM_DIR/agent.conf
INS=207058575627097   # PATB-QUATRE Laurence, the "single" Vitale persona
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# refused: a command that must fail (a refusal the story shows).
refused() { printf '$ %s\n' "$*"; if "$@"; then echo "demo: this should have been refused" >&2; exit 1; fi; }

agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  "$bin" sim down >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "dmpagent version"
"$bin" version
step "start the simulator: emulated CPS and Vitale cards, simulated DMP (state in $DMPAGENT_SIM_DIR)"
rm -rf "$DMPAGENT_SIM_DIR/agent" "$DMPAGENT_SIM_DIR/dmp"
run "$bin" sim up
step "start the agent on the simulation's configuration ($DMPAGENT_CONFIG)"
"$bin" run --config "$DMPAGENT_CONFIG" 2>"$DMPAGENT_SIM_DIR/agent.log" &
agent_pid=$!
for _ in $(seq 100); do "$bin" status >/dev/null 2>&1 && break; sleep 0.1; done
run "$bin" status
step "the practice software gets its token (admin socket)"
printf '$ %s\n' "$bin token create --app 'Logiciel de démonstration'"
DMPAGENT_TOKEN=$("$bin" token create --app "Logiciel de démonstration")
export DMPAGENT_TOKEN
echo "token ${DMPAGENT_TOKEN:0:9}… (shown once, stored hashed)"

step "1. the GP (Dr Max LIBRE) inserts the CPS, logs in"
run "$bin" sim insert cps gp --reader 0
sleep 1
run "$bin" readers
echo '$ dmpagent session login   (PIN typed without echo; here from stdin)'
echo 1234 | "$bin" session login --pin-stdin

step "2. the patient's Vitale card goes in; the agent reads it and asks INSi for the INS"
run "$bin" sim insert vitale single --reader 1
sleep 1
run "$bin" dmp vitale

step "3. the DMP is created with the patient's consent, captured at the card"
refused "$bin" dmp create $INS
out=$("$bin" dmp create $INS --consent --informed --json)
echo "$out"
receipt=$(printf '%s' "$out" | sed -n 's/.*"consent_receipt_id": *"\([^"]*\)".*/\1/p')
run "$bin" consent verify "$receipt"

step "4. a PDF report, and a psychiatric synthesis, fed through the outbox"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; cleanup' EXIT
printf '%%PDF-1.4\n%% compte rendu de consultation\n%%%%EOF\n' >"$tmp/report.pdf"
printf '%%PDF-1.4\n%% synthese psychiatrique\n%%%%EOF\n' >"$tmp/psy.pdf"
run "$bin" dmp feed $INS "$tmp/report.pdf" --title "Compte rendu de consultation" --type-code 11488-4 --wait
run "$bin" dmp feed $INS "$tmp/psy.pdf" --title "Synthèse psychiatrique" --type-code 68599-0 --wait
run "$bin" dmp list $INS
report=$("$bin" dmp list $INS --json | tr -d '\n ' | sed 's/},{/}\n{/g' | grep '"type_code":"11488-4"' | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
run "$bin" dmp get $INS "$report" --pdf -o "$tmp/back.pdf"
run cmp "$tmp/report.pdf" "$tmp/back.pdf" && echo "the PDF read back from the DMP is the one fed, byte for byte"

step "5. the pharmacist (Anne OFFICINE) is authorized by the patient, and reads what the matrix allows"
run "$bin" session logout
run "$bin" sim remove --reader 0
run "$bin" sim insert cps pharmacist --reader 0
sleep 1
echo 1234 | "$bin" session login --pin-stdin
refused "$bin" dmp list $INS
run "$bin" dmp authorize $INS --consent --informed
run "$bin" dmp list $INS
echo "(the psychiatric synthesis is not in the pharmacist's column of the habilitation matrix)"

step "6. the patient masks the report from professionals (patient side of the simulated DMP)"
run "$bin" sim patient mask single "$report"
run "$bin" dmp list $INS

step "7. the cardiologist (Paul CARDIO) is refused, then uses break-glass with a reason"
run "$bin" session logout
run "$bin" sim remove --reader 0
run "$bin" sim insert cps cardiologist --reader 0
sleep 1
echo 1234 | "$bin" session login --pin-stdin
refused "$bin" dmp list $INS
run "$bin" dmp emergency $INS --break-glass "Douleur thoracique aiguë, patiente inconsciente aux urgences"
run "$bin" dmp list $INS

step "8. the patient's access history lists it all"
run "$bin" sim patient history single

step "the agent's audit log is intact"
unset DMPAGENT_TOKEN
run "$bin" audit verify
run "$bin" session logout

step "take the cards out and stop"
run "$bin" sim remove --reader 0
run "$bin" sim remove --reader 1
