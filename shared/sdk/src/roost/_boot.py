"""Entry module for Dramatiq's worker processes (``roost worker`` runs Dramatiq's CLI
with ``roost._boot:broker``). Each process imports it afresh, after the fork, so each
has its own broker connections."""

from __future__ import annotations

import logging
import os

from roost._worker import load_worker
from roost_core import logs, tracing

logging.getLogger("pika").setLevel(logging.WARNING)
if os.environ.get("ROOST_LOG_FORMAT", "").strip().lower() == "json":
    logs.configure("worker")  # else Dramatiq's own format, which names process and thread
tracing.setup("worker")  # per process, after the fork: the exporter's thread is its own
worker = load_worker(os.environ["ROOST_WORKER_TARGET"])
broker = worker.setup_broker()
