#!/usr/bin/env bash
# Run the beads example end to end on the stack `just up` started: a worker, one run,
# each task's result, the run's outcome. Stops the worker it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
set -a; . .roost/dev.env; set +a
nohup .venv/bin/roost worker examples.beads:worker --processes 1 --threads 8 \
  >.roost/logs/demo-worker.log 2>&1 &
echo $! >.roost/pids/demo-worker.pid
trap 'kill -TERM "$(cat .roost/pids/demo-worker.pid)" 2>/dev/null; rm -f .roost/pids/demo-worker.pid' EXIT
.venv/bin/python -m examples.beads "${1:-bd-42}"
