# Sourced by the set-up scripts in this folder: installing Debian packages when they are
# missing, or, when that is outside our reach (no apt, not root and no password-less
# sudo), saying in one line what to install.

# Stop with one line naming what to install.
need() {
  echo "roost: $1" >&2
  exit 1
}

SUDO=""
# Whether apt-get can be run here (as root, or through password-less sudo).
can_apt() {
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$(id -u)" = "0" ]; then SUDO=""; return 0; fi
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; return 0; fi
  return 1
}

_apt_updated=""
# apt_install WHAT PACKAGE...: install Debian packages, or say what to install.
apt_install() {
  local what=$1
  shift
  can_apt || need "$what is missing: install it (on Debian: apt-get install $*), then run this again"
  echo "installing $what from apt..."
  if [ -z "$_apt_updated" ]; then $SUDO apt-get update -q >/dev/null; _apt_updated=1; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}
