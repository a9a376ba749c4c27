#!/usr/bin/env bash
# Make sure headless Chromium is installed at /usr/bin/chromium for the browser tests
# (tests/e2e/test_event_stream_browser.py drives it with Playwright). Installs Debian's
# `chromium` package from apt if absent; does nothing if it is already there.
# (`playwright install` downloads its own browsers, which this setup does not rely on.)
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/lib.sh

if [ -x /usr/bin/chromium ]; then
  echo "Chromium is installed."
  exit 0
fi

apt_install Chromium chromium

if [ ! -x /usr/bin/chromium ]; then
  echo "error: apt installed chromium but /usr/bin/chromium is missing" >&2
  exit 1
fi
echo "Chromium is installed."
