#!/usr/bin/env bash
# Debian packages some tests use: chromium (browser test of the Space) and darknet (real non-leaf photos).
# Skipped without root or apt-get; the tests that need them then skip with a reason.
set -euo pipefail
needed=()
[ -x /usr/bin/chromium ] || needed+=(chromium)
[ -d /usr/share/darknet/data ] || needed+=(darknet)
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system_packages: cannot install ${needed[*]} (needs root and apt-get); dependent tests will skip" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
