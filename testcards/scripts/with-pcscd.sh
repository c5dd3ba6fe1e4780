#!/usr/bin/env bash
# with-pcscd.sh CMD...: runs CMD with a pcscd that has the vsmartcard-vpcd
# driver. Uses the pcscd already running if there is one; otherwise starts
# one and stops it afterwards (only the one it started). A pcscd it started
# is the tests' to restart (DMPAGENT_PCSCD_RESTARTABLE=1 says so), so at the
# end it stops whichever pcscd then runs.
set -euo pipefail

has_vpcd() { opensc-tool -l 2>/dev/null | grep -q 'Virtual PCD'; }

started=""
cleanup() {
  if [ -n "$started" ]; then
    pkill -x pcscd 2>/dev/null || true
    for _ in $(seq 50); do pgrep -x pcscd >/dev/null || break; sleep 0.1; done
    echo "with-pcscd: stopped the pcscd it started (pid $started, or its restarted successor)"
  fi
}
trap cleanup EXIT

if pgrep -x pcscd >/dev/null 2>&1; then
  if ! has_vpcd; then
    echo "with-pcscd: a pcscd runs but lists no 'Virtual PCD' reader." >&2
    echo "  It was started before vsmartcard-vpcd was installed: restart it (as root: pkill -x pcscd)." >&2
    exit 1
  fi
  echo "with-pcscd: using the running pcscd (pid $(pgrep -x pcscd | head -1))"
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "with-pcscd: no pcscd runs and only root can start one; run as root: pcscd" >&2
    exit 1
  fi
  log=${TMPDIR:-/tmp}/dmpagent-pcscd.log
  setsid pcscd --foreground >"$log" 2>&1 &
  started=$!
  for _ in $(seq 100); do has_vpcd && break; sleep 0.1; done
  if ! has_vpcd; then
    echo "with-pcscd: pcscd (pid $started) shows no vpcd reader after 10 s; its log:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  echo "with-pcscd: started pcscd (pid $started, log $log)"
  export DMPAGENT_PCSCD_RESTARTABLE=1
fi

"$@"
