"""The span store's side in PostgreSQL: storing shipped spans (bounded per run, each
once) and reading a run's spans back (``roost_core.spans`` ships them)."""

from __future__ import annotations

import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from roost_core import fastjson
from roost_core.queries import SQL
from roost_core.spans import SpanEventRecord, SpanRecord, WireSpan

_COUNTS = SQL.span_counts
_STORED = SQL.stored_spans
_INSERT = SQL.insert_spans


class StoredCounts:
    """How many spans a writer knows each recent run to have: its own inserts on top of
    a count read once. Counting a run's spans in PostgreSQL for every batch was the
    largest statement of a bulk workload (issue #17); a run's spans come in several
    batches (its trigger, each task, the scheduler's decisions), so most batches find
    their runs here. Runs within half their cap of it are counted again every time, so
    the cap holds; another replica's inserts since the count are all this can miss."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._counts: OrderedDict[str, int] = OrderedDict()

    def get(self, run_id: str) -> int | None:
        return self._counts.get(run_id)

    def put(self, run_id: str, count: int) -> None:
        self._counts[run_id] = count
        self._counts.move_to_end(run_id)
        if len(self._counts) > self._size:
            self._counts.popitem(last=False)


def store(
    conn: psycopg.Connection[Any],
    spans: Iterable[WireSpan | SpanRecord],
    cap: int,
    known: StoredCounts | None = None,
) -> list[WireSpan]:
    """Insert ``spans`` of existing runs, at most ``cap`` per run (counting those
    already stored), each once (a redelivered batch adds nothing); return those
    inserted. Spans of runs that do not exist (deleted, or never committed) are dropped.
    Two replicas storing spans of one run at the same instant may pass the cap by one
    batch: the bound is there to keep a runaway task from filling the table. With
    ``known``, runs far from their cap are counted from it, not in PostgreSQL."""
    by_run: dict[str, dict[str, WireSpan]] = defaultdict(dict)
    for item in spans:
        span = item.model_dump() if isinstance(item, SpanRecord) else item
        try:
            uuid.UUID(span["run_id"])
        except ValueError:
            continue  # not a run id: a user set the attribute to something else
        by_run[span["run_id"]].setdefault(span["span_id"], span)
    if not by_run:
        return []
    counts: dict[str, int] = {}
    to_count: list[str] = []
    for run_id, batch in by_run.items():
        count = None if known is None else known.get(run_id)
        if count is None or count + len(batch) > cap // 2:
            to_count.append(run_id)
        else:
            counts[run_id] = count
    if to_count:
        counts.update((row[0], int(row[1])) for row in conn.execute(_COUNTS, {"run_ids": to_count}))
    # Near its cap, a redelivered span must not take the place of a new one: only for
    # those runs, look up which of these spans they have already.
    full = [r for r, n in counts.items() if n + len(by_run[r]) > cap]
    have: dict[str, set[str]] = defaultdict(set)
    if full:
        for run_id, span_id in conn.execute(
            _STORED, {"run_ids": full, "span_ids": [sid for r in full for sid in by_run[r]]}
        ):
            have[run_id].add(span_id)
    wanted: list[WireSpan] = []
    for run_id, count in counts.items():
        fresh = [s for sid, s in by_run[run_id].items() if sid not in have[run_id]]
        wanted += fresh[: max(0, cap - count)]
    if not wanted:
        return []
    rows = conn.execute(_INSERT, {"spans": fastjson.dumps(wanted)}).fetchall()
    inserted = {(r[0], r[1]) for r in rows}
    if known is not None:
        added: dict[str, int] = defaultdict(int)
        for run_id, _ in inserted:
            added[run_id] += 1
        for run_id, count in counts.items():
            known.put(run_id, count + added[run_id])
    return [s for s in wanted if (s["run_id"], s["span_id"]) in inserted]


# A run's spans, each read by from_row: in start order, and in the api's waterfall order.
RUN_SPANS = SQL.run_spans
RUN_SPANS_WATERFALL = SQL.run_spans_waterfall


def from_row(row: Sequence[Any]) -> SpanRecord:
    return SpanRecord(
        run_id=row[0],
        trace_id=row[1],
        span_id=row[2],
        parent_span_id=row[3],
        name=row[4],
        service=row[5],
        kind=row[6],
        start=float(row[7]),
        end=float(row[8]),
        status=row[9],
        status_message=row[10],
        attributes=row[11] or {},
        events=[SpanEventRecord.model_validate(e) for e in row[12] or []],
    )
