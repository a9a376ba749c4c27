#!/usr/bin/env bash
# Stop exactly what `just up` and `just demo` started: the PIDs in .roost/pids/.
set -uo pipefail
cd "$(dirname "$0")/../.."
shopt -s nullglob
for pidfile in .roost/pids/*.pid; do
  pid=$(cat "$pidfile")
  name=$(basename "$pidfile" .pid)
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
done
