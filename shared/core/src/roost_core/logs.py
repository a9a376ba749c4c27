"""Logging for every Roost process: text for people (the default) or one JSON object per
line for log pipelines (``ROOST_LOG_FORMAT=json``), with the level from
``ROOST_LOG_LEVEL``. Whatever a log call passes in ``extra`` (run_id, task, action,
worker...) becomes a field of the JSON line, so lines can be found by run or task; a line
logged inside a span also carries its ``trace_id`` and ``span_id``."""

from __future__ import annotations

import logging
import os
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("text", "json")


class _TraceIds(logging.Filter):
    """Adds the current span's trace and span ids to each record logged inside one (a
    task attempt on a worker, a trigger in the api), so a line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def configure(service: str) -> None:
    """Log to stderr in the configured format; SystemExit naming a bad setting."""
    fmt = os.environ.get("ROOST_LOG_FORMAT", "text").strip().lower() or "text"
    if fmt not in FORMATS:
        raise SystemExit(f"ROOST_LOG_FORMAT={fmt!r} must be one of: {', '.join(FORMATS)}")
    level = os.environ.get("ROOST_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if not isinstance(logging.getLevelName(level), int):
        raise SystemExit(f"ROOST_LOG_LEVEL={level!r} is not a logging level (INFO, DEBUG...)")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
            )
        )
        handler.addFilter(_TraceIds())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pika").setLevel(logging.WARNING)
