#!/usr/bin/env bash
# Make sure Node.js and npm are installed (the dashboard's front-end packages come from
# the npm registry: `npm ci` in services/dashboard). Installs Debian's `nodejs` and `npm`
# from apt if absent; does nothing if npm is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/lib.sh

if command -v npm >/dev/null 2>&1; then
  exit 0
fi

apt_install "Node.js and npm" nodejs npm
command -v npm >/dev/null 2>&1 || { echo "error: apt installed npm but it is not on PATH" >&2; exit 1; }
