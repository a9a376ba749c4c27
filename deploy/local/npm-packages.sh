#!/usr/bin/env bash
# The dashboard's front-end packages, exactly as its lock file says (npm ci), unless the
# installed ones already came from this very lock file: `npm ci` would delete and
# reinstall them every time.
set -euo pipefail
cd "$(dirname "$0")/../../services/dashboard"
stamp=node_modules/.roost-installed-from-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
  exit 0
fi
# Node.js trusts the machine's certificate store (OpenSSL's), not only its own list.
NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--use-openssl-ca" \
  npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
