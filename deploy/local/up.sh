#!/usr/bin/env bash
# Start Roost on this machine: migrate, start the api, a scheduler, the ratelimiter, the
# event gateway and the dashboard in the background, write .roost/dev.env, and return once
# the api, the gateway and the dashboard answer. `just down` stops exactly the processes
# recorded in .roost/pids/.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROOT=.roost
mkdir -p "$ROOT/pids" "$ROOT/logs"
DB_NAME=${ROOST_DEV_DATABASE:-roost}
export ROOST_DATABASE_URL=${ROOST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/$DB_NAME}
export ROOST_BROKER_URL=${ROOST_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}
export ROOST_NAMESPACE=${ROOST_NAMESPACE:-roost}
export ROOST_API_PORT=${ROOST_API_PORT:-7077}
export ROOST_API_URL=${ROOST_API_URL:-http://127.0.0.1:$ROOST_API_PORT}
export ROOST_GATEWAY_PORT=${ROOST_GATEWAY_PORT:-7078}
export ROOST_GATEWAY_URL=${ROOST_GATEWAY_URL:-http://127.0.0.1:$ROOST_GATEWAY_PORT}
export ROOST_DASHBOARD_HOST=${ROOST_DASHBOARD_HOST:-127.0.0.1}
export ROOST_DASHBOARD_PORT=${ROOST_DASHBOARD_PORT:-8080}
case $ROOST_DASHBOARD_HOST in
  0.0.0.0 | :: | "") DASHBOARD_URL=http://127.0.0.1:$ROOST_DASHBOARD_PORT ;;
  *:*) DASHBOARD_URL="http://[$ROOST_DASHBOARD_HOST]:$ROOST_DASHBOARD_PORT" ;;
  *) DASHBOARD_URL=http://$ROOST_DASHBOARD_HOST:$ROOST_DASHBOARD_PORT ;;
esac
export ROOST_TLS_STRATEGY=${ROOST_TLS_STRATEGY:-none}
PY=.venv/bin/python
ROOST=.venv/bin/roost

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Create the development database if it does not exist yet.
$PY - <<PYEOF
import psycopg
with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
    if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", ("$DB_NAME",)).fetchone():
        c.execute('CREATE DATABASE "$DB_NAME"')
PYEOF
$ROOST migrate

# Reuse the token of an earlier `just up`, or make one.
TOKEN=""
if [ -f "$ROOT/dev.env" ]; then TOKEN=$(sed -n 's/^ROOST_TOKEN=//p' "$ROOT/dev.env"); fi
if [ -z "$TOKEN" ] || ! $PY - "$TOKEN" <<'PYEOF'
import os, sys, hashlib, psycopg
h = hashlib.sha256(sys.argv[1].encode()).hexdigest()
with psycopg.connect(os.environ["ROOST_DATABASE_URL"]) as c:
    sys.exit(0 if c.execute("SELECT 1 FROM api_tokens WHERE token_hash=%s AND revoked_at IS NULL", (h,)).fetchone() else 1)
PYEOF
then
  TOKEN=$($ROOST token create --name dev)
fi
export ROOST_TOKEN=$TOKEN

cat > "$ROOT/dev.env" <<ENVEOF
ROOST_API_URL=$ROOST_API_URL
ROOST_GATEWAY_URL=$ROOST_GATEWAY_URL
ROOST_TOKEN=$ROOST_TOKEN
ROOST_BROKER_URL=$ROOST_BROKER_URL
ROOST_DATABASE_URL=$ROOST_DATABASE_URL
ROOST_NAMESPACE=$ROOST_NAMESPACE
ROOST_TLS_STRATEGY=$ROOST_TLS_STRATEGY
ENVEOF

SERVICES="api scheduler ratelimiter gateway dashboard"

for svc in $SERVICES; do
  if running "$ROOT/pids/$svc.pid"; then
    echo "$svc already running (pid $(cat "$ROOT/pids/$svc.pid"))"
    continue
  fi
  nohup $ROOST "$svc" >"$ROOT/logs/$svc.log" 2>&1 &
  echo $! >"$ROOT/pids/$svc.pid"
  echo "started $svc (pid $!), log in $ROOT/logs/$svc.log"
done

for _ in $(seq 1 100); do
  # Python rather than curl: a fresh machine may have no curl.
  if $PY -c "import sys, urllib.request; [urllib.request.urlopen(u, timeout=2) for u in sys.argv[1:]]" \
      "$ROOST_API_URL/ready" "$ROOST_GATEWAY_URL/ready" "$DASHBOARD_URL/health" >/dev/null 2>&1; then
    echo "Roost is up: api at $ROOST_API_URL, live events at $ROOST_GATEWAY_URL," \
      "dashboard at $DASHBOARD_URL; settings in $ROOT/dev.env"
    exit 0
  fi
  for svc in $SERVICES; do
    if ! running "$ROOT/pids/$svc.pid"; then
      echo "error: $svc exited; its log:" >&2; tail -n 30 "$ROOT/logs/$svc.log" >&2; exit 1
    fi
  done
  sleep 0.2
done
echo "error: the api, gateway or dashboard did not become ready; see $ROOT/logs/" >&2
exit 1
