# Roost's tasks. `just --list` shows them all.
set shell := ["bash", "-euo", "pipefail", "-c"]

# Create .venv with every workspace package (uv from deploy/local/tools.sh), and the
# dashboard's front-end packages from the npm registry (installs Node.js if needed).
# Fast and changes nothing when everything is in place already. Downloads trust the
# machine's certificate store (UV_NATIVE_TLS), as pip and apt do, so that a network
# behind a TLS-inspecting proxy whose CA the machine trusts works too.
setup:
    bash deploy/local/tools.sh
    UV_NATIVE_TLS=1 .roost/tools/bin/uv sync --all-packages --frozen --python python3.11 -q
    bash deploy/local/ensure-node.sh
    bash deploy/local/npm-packages.sh

# Make sure local PostgreSQL and RabbitMQ run (installs them from apt if absent).
servers:
    bash deploy/local/ensure-servers.sh

# Start the api and a scheduler in the background; writes .roost/dev.env.
up: setup servers
    bash deploy/local/up.sh

# Stop exactly what `just up` started.
down:
    bash deploy/local/down.sh

# Bring everything up and run the beads example end to end.
demo: up
    bash deploy/local/demo.sh

# Make sure headless Chromium is installed (installs it from apt if absent).
browser:
    bash deploy/local/ensure-browser.sh

# The whole test suite against real PostgreSQL and RabbitMQ.
test *ARGS: setup servers browser
    .venv/bin/python -m pytest {{ARGS}}

# Lint, type-check, and hold the service boundaries.
lint: setup
    .venv/bin/ruff check .
    .venv/bin/mypy shared/core/src shared/sdk/src services/api/src services/scheduler/src services/gateway/src services/ratelimiter/src services/dashboard/src
    .venv/bin/lint-imports

# Benchmarks against raw Dramatiq on the same broker (not part of the test suite), and
# the dashboard with a million runs stored.
bench *ARGS: setup servers browser
    .venv/bin/python tests/bench/bench.py {{ARGS}}
    .venv/bin/python tests/bench/ratelimiter_bench.py
    .venv/bin/python tests/bench/schedules_bench.py
    .venv/bin/python tests/bench/durable_bench.py
    .venv/bin/python tests/bench/placement_bench.py
    .venv/bin/python tests/bench/tracing_bench.py
    .venv/bin/python tests/bench/dashboard_bench.py

# Crons: the scheduler's CPU with 10,000 registered, and their fire lag (issue #19).
bench-schedules *ARGS: setup servers
    .venv/bin/python tests/bench/schedules_bench.py {{ARGS}}

# Durable tasks: 10,000 sleeping at once, their bytes and how late they resume (#18).
bench-durable *ARGS: setup servers
    .venv/bin/python tests/bench/durable_bench.py {{ARGS}}

# Placement: sticky and labelled tasks' hand-off beside plain ones, and a burst of
# labelled runs dispatched over 50 labelled worker processes (#21).
bench-placement *ARGS: setup servers
    .venv/bin/python tests/bench/placement_bench.py {{ARGS}}

# Where PostgreSQL spends W1, W1 bulk and W2, statement by statement (pg_stat_statements
# on a private server the bench starts and stops; issue #17).
bench-statements *ARGS: setup servers
    .venv/bin/python tests/bench/bench.py --workloads W1,W2 --statements {{ARGS}}
