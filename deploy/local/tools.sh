#!/usr/bin/env bash
# Make the two tools every project command runs through, uv and just, available in
# .roost/tools/bin: a link to the one already on PATH, or else installed into the tools
# environment .roost/tools/venv (a virtual environment, so Debian's Python, which refuses
# installs outside one (PEP 668), is never written to). Installs Debian's python3 and
# python3-venv from apt when they are missing. Fast and silent when all is in place.
#
# Remove what it installed with: rm -rf .roost/tools .venv
set -euo pipefail
cd "$(dirname "$0")/../.."

. deploy/local/lib.sh

TOOLS=.roost/tools
BIN=$TOOLS/bin
# Pinned: the uv that wrote uv.lock (deploy/Dockerfile installs the same), and a just
# that reads this Justfile.
UV_VERSION=0.13.9
JUST_VERSION=1.59.0

has_tool() {
  local found
  found=$(command -v "$1" 2>/dev/null) || return 1
  # Not our own link (a PATH that already holds .roost/tools/bin).
  [ "$(cd "$(dirname "$found")" && pwd -P)" != "$(mkdir -p "$BIN" && cd "$BIN" && pwd -P)" ]
}

mkdir -p "$BIN"
missing=()
for tool in uv just; do
  if [ -x "$BIN/$tool" ]; then continue; fi
  if has_tool "$tool"; then
    ln -sf "$(command -v "$tool")" "$BIN/$tool"
  else
    missing+=("$tool")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

# -- install the missing ones into the tools environment ------------------------------
command -v python3 >/dev/null 2>&1 || apt_install "Python 3" python3
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || need "Python 3.11 or newer is needed, $(command -v python3) is $(python3 --version 2>&1)"

VENV=$TOOLS/venv
if [ ! -x "$VENV/bin/pip" ]; then
  rm -rf "$VENV"
  # Debian's Python makes a virtual environment only with python3-venv (its ensurepip).
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    apt_install "Python's venv module" python3-venv
    python3 -m venv "$VENV" || need "python3 -m venv failed even with python3-venv installed"
  fi
fi

packages=()
for tool in "${missing[@]}"; do
  case $tool in
    uv) packages+=("uv==$UV_VERSION") ;;
    just) packages+=("rust-just==$JUST_VERSION") ;;  # PyPI's `just` is something else
  esac
done
echo "installing ${packages[*]} into $VENV..."
"$VENV/bin/pip" install -q --disable-pip-version-check "${packages[@]}"
for tool in "${missing[@]}"; do
  ln -sf "../venv/bin/$tool" "$BIN/$tool"
done
