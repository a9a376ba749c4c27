#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) are running on this
# machine: start them if installed, install them from apt if absent. Servers that are
# already running are left exactly as they are.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/lib.sh

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 120); do
    if port_open "$port"; then return 0; fi
    sleep 0.5
  done
  echo "error: $name did not start listening on 127.0.0.1:$port" >&2
  exit 1
}

# -- PostgreSQL -----------------------------------------------------------------------
if ! port_open 5432; then
  fresh=""
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install PostgreSQL postgresql
    fresh=1
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -n "$fresh" ]; then
    # A server we just installed: let local tools connect as postgres over TCP without
    # a password, as the development setup expects (never done to an existing server).
    hba=/etc/postgresql/$version/main/pg_hba.conf
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  can_apt || [ "$(id -u)" = "0" ] || need "PostgreSQL is not running on 127.0.0.1:5432: start it (pg_ctlcluster $version main start, as root)"
  echo "starting PostgreSQL $version..."
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 PostgreSQL
  if [ -n "$fresh" ]; then
    # The package may have started the server before pg_hba.conf was edited.
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  fi
fi

# -- RabbitMQ -------------------------------------------------------------------------
if ! port_open 5672; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    apt_install RabbitMQ rabbitmq-server
  fi
  if ! port_open 5672; then
    can_apt || [ "$(id -u)" = "0" ] || need "RabbitMQ is not running on 127.0.0.1:5672: start it (rabbitmq-server -detached, as root)"
    echo "starting RabbitMQ..."
    $SUDO rabbitmq-server -detached || true
  fi
  wait_port 5672 RabbitMQ
fi
echo "PostgreSQL and RabbitMQ are running."
