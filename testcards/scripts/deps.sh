#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages dmpagent's build, tests and demo need.
# As root it runs apt-get; otherwise it prints the one command to run.
set -euo pipefail

packages=(
  gcc pkg-config libpcsclite-dev     # cgo: ebfe/scard and piv-go link libpcsclite
  pcscd vsmartcard-vpcd pcsc-tools   # the real PC/SC stack and the virtual reader driver
  opensc opensc-pkcs11 softhsm2      # PKCS#11 modules and tools
  openssl xmlsec1 libxml2-utils      # certificate, signature and schema checks
  chromium python3                   # the agent's page in headless Chromium; a peer-credential probe
)
# `deps.sh cross`: what `make cross` needs instead.
if [ "${1:-}" = cross ]; then
  packages=(gcc-mingw-w64-x86-64 file)  # cgo for windows/amd64 (miekg/pkcs11)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: not a Debian-like system; install the equivalents of: ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
