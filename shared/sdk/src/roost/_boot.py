"""Entry module for Dramatiq's worker processes (``roost worker`` runs Dramatiq's CLI
with ``roost._boot:broker``). Each process imports it afresh, after the fork, so each
has its own broker connections."""

from __future__ import annotations

import logging
import os

from roost import _task_logs as task_logs
from roost._worker import load_worker
from roost_core import logs, tracing

logging.getLogger("pika").setLevel(logging.WARNING)
if os.environ.get("ROOST_LOG_FORMAT", "").strip().lower() == "json":
    logs.configure("worker")  # else Dramatiq's own format, which names process and thread
# Records logged inside a task name it, and reach its run's logs (ROOST_TASK_LOG_LEVEL).
task_logs.install()
worker = load_worker(os.environ["ROOST_WORKER_TARGET"])
# Per process, after the fork: the exporters' threads and connections are its own.
tracing.setup(
    "worker", broker_url=worker.roost.settings.broker_url, namespace=worker.roost.settings.namespace
)
broker = worker.setup_broker()
