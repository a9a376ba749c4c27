"""How the pages show times, durations, what started a run, what a WAITING task
waits for and how an approval was decided (Jinja filters; the live parts' script formats
them the same way: static/dashboard.js ``formatWhen``, ``formatDuration``, ``waitText``,
``compactJson`` and ``outcomeText``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def format_seconds(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``4 m 05 s``, ``2 h 07 m``: exact where it is short,
    coarse where the seconds no longer matter."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} m"


def duration(start: str | None, end: str | None) -> str:
    """From ``start`` to ``end`` (ISO 8601, as the api gives them); empty until both are
    known."""
    if not start or not end:
        return ""
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return format_seconds(max(0.0, seconds))


def when(at: str | None) -> str:
    """A time the api gave (ISO 8601) as ``2026-11-26 19:33:33Z``: to the second, in UTC,
    which every operator's clock can be compared with; empty when there is none."""
    if not at:
        return ""
    moment = datetime.fromisoformat(at).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def wait(waiting: dict[str, Any] | None) -> str:
    """What a WAITING task waits for (its ``waiting``: ``{"reason", "until"}``, until in
    unix seconds) as ``sleep until 2026-12-07 06:10:03Z`` (a join of child runs:
    ``children (3 runs)``); empty when it waits for nothing. No countdown: the page
    would have to tick it; the time itself never goes stale."""
    if not waiting:
        return ""
    text = str(waiting.get("reason") or "wait")
    if waiting.get("key"):  # an event wait (the next slice of #18): which event
        text += f" {waiting['key']}"
    runs = waiting.get("runs")
    if waiting.get("reason") == "children" and isinstance(runs, list):  # a join: how many
        text += f" ({len(runs)} run{'' if len(runs) == 1 else 's'})"
    events = waiting.get("events")
    if waiting.get("reason") == "any" and isinstance(events, dict) and events:
        text += " of " + ", ".join(sorted(str(name) for name in events))  # its branches
    until = waiting.get("until")
    if isinstance(until, int | float) and not isinstance(until, bool):
        text += " until " + datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return text


def trigger(run: dict[str, Any]) -> str:
    """What started a run, from the metadata Roost gives such runs: an event (its key), a
    cron (its name), a scheduled run (its id's first 8 characters, as lists show run
    ids); else a call to the api (the SDK, the CLI, the dashboard's form, HTTP)."""
    meta = run.get("metadata") or {}
    if meta.get("event_key"):
        return f"event {meta['event_key']}"
    if meta.get("roost.cron"):
        return f"cron {meta['roost.cron']}"
    if meta.get("roost.scheduled_id"):
        return f"scheduled run {str(meta['roost.scheduled_id'])[:8]}"
    return "api"


# Details longer than this (compact JSON) are cut, with the whole shown on request.
COMPACT = 120


def compact(value: Any, indent: int | None = None) -> str:
    """An approval's details as one line of compact JSON (keys as the task gave them), or
    indented over lines with ``indent``."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(value, separators=separators, indent=indent, ensure_ascii=False)


def outcome(approval: dict[str, Any]) -> str:
    """How an approval ended, as its gate says once it is no longer pending:
    ``Approved by ops at 2026-12-07 09:10:03Z: CI green``; empty while it is pending."""
    status = str(approval.get("status") or "")
    if status in ("APPROVED", "REJECTED"):
        text = f"{status.capitalize()} by {approval.get('decided_by') or '?'}"
        if approval.get("decided_at"):
            text += f" at {when(approval['decided_at'])}"
        return text + (f": {approval['reason']}" if approval.get("reason") else "")
    if status == "EXPIRED":
        return "Expired: no decision before its timeout"
    if status == "CANCELLED":
        return "Cancelled: its task ended before a decision"
    return ""
