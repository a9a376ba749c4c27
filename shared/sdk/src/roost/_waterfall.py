"""A run's trace as a terminal waterfall: one line per span, in tree order, with a bar placed
and sized by when the span ran within the run.

Roost stores each run's spans itself, so a user can see where a run's time went (queueing,
the task, their own spans inside it) without standing up a tracing backend. This module only
turns a ``RunTrace`` into a rich renderable: no I/O, so it is easy to test and to reuse. The
span data can be incomplete or odd (a parent not stored, clock skew, even a parent cycle), so
the layout never trusts it to form a proper tree.
"""

from __future__ import annotations

from collections import defaultdict

from rich.console import Group, RenderableType
from rich.table import Column, Table
from rich.text import Text

from roost._models import RunTrace, Span

_MIN_BAR = 20
_MIN_NAME = 12
_GAPS = 6  # three two-cell gaps between the four columns
_MAX_ERROR = 60
_FULL = "█"
_TINY = "▏"  # a span too short for one full cell still shows

_RUN_STYLE = {
    "QUEUED": "cyan",
    "RUNNING": "bold blue",
    "SUCCEEDED": "green",
    "FAILED": "bold red",
    "CANCELLED": "magenta",
}

_NO_SPANS = (
    "No spans are stored for this run yet. Spans arrive a fraction of a second after they "
    "end; if none ever do, tracing may be off (OTEL_SDK_DISABLED=true or "
    "ROOST_TRACE_STORE=false)."
)


def format_seconds(seconds: float) -> str:
    """``45.6 ms`` under a second, ``1.23 s`` from one second on."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def tree_order(spans: list[Span]) -> list[tuple[Span, int]]:
    """The spans depth-first with their depth: roots (no parent, or a parent not among these
    spans) by start time, each followed by its children by start time. Every span appears
    exactly once, even if parent links form a cycle."""
    ids = {s.span_id for s in spans}
    children: defaultdict[str, list[int]] = defaultdict(list)
    roots: list[int] = []
    for i, s in enumerate(spans):
        if s.parent_span_id is None or s.parent_span_id not in ids:
            roots.append(i)
        else:
            children[s.parent_span_id].append(i)

    def by_start(indexes: list[int]) -> list[int]:
        # The index breaks ties so equal starts keep the stored order.
        return sorted(indexes, key=lambda i: (spans[i].start, i))

    out: list[tuple[Span, int]] = []
    seen: set[int] = set()  # list positions, so duplicate span ids can't hide a span

    def walk(root: int) -> None:
        # Iterative, and skipping what was already placed, so a cycle can't loop.
        stack = [(root, 0)]
        while stack:
            i, depth = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            out.append((spans[i], depth))
            kids = by_start(children.get(spans[i].span_id, []))
            stack.extend((k, depth + 1) for k in reversed(kids) if k not in seen)

    for r in by_start(roots):
        walk(r)
    # Spans left over sit on a parent cycle with no way in from a root: start each cycle
    # at its earliest span.
    for i in by_start(list(range(len(spans)))):
        if i not in seen:
            walk(i)
    return out


def _error_text(span: Span) -> str:
    """What went wrong in an error span, on one short line ("" if nothing says)."""
    text = ""
    for ev in span.events:
        if ev.name == "exception":
            etype = str(ev.attributes.get("exception.type") or "")
            emsg = str(ev.attributes.get("exception.message") or "")
            text = f"{etype}: {emsg}" if etype and emsg else etype or emsg
            break
    if not text:
        text = span.status_message or ""
    text = " ".join(text.split())  # a traceback or multi-line message stays on one line
    if len(text) > _MAX_ERROR:
        text = text[: _MAX_ERROR - 1] + "…"
    return text


def _bar(span: Span, t0: float, extent: float, bar_width: int) -> Text:
    """The span's bar: offset and length proportional to its start and duration."""
    if extent <= 0:
        offset = stop = 0
    else:
        # Round both ends on the same scale, so float noise can't shift a bar a cell.
        offset = round((span.start - t0) / extent * bar_width)
        stop = round((span.start + span.duration - t0) / extent * bar_width)
    offset = min(max(offset, 0), bar_width - 1)
    length = min(stop, bar_width) - offset
    bar = _FULL * length if length >= 1 else _TINY
    style = "red" if span.status == "error" else "green"
    return Text.assemble(" " * offset, (bar, style))


def _header(trace: RunTrace, extent: float) -> Text:
    status = str(trace.status)
    n = len(trace.spans)
    header = Text.assemble(
        ("run ", "dim"),
        (trace.run_id, "bold"),
        "  ",
        (status, _RUN_STYLE.get(status, "")),
        ("  trace ", "dim"),
        trace.trace_id or "-",
        "  ",
        f"{n} span{'' if n == 1 else 's'}",
    )
    if n:
        header.append("  ")
        header.append(format_seconds(extent), style="bold")
    return header


def render(trace: RunTrace, width: int = 100) -> RenderableType:
    """The run's trace as a header line and a waterfall table of its spans."""
    spans = trace.spans
    t0 = min((s.start for s in spans), default=0.0)
    extent = max(0.0, max((s.end for s in spans), default=0.0) - t0)
    header = _header(trace, extent)
    if not spans:
        return Group(header, Text(_NO_SPANS, style="dim"))

    # Names are never cut (they say what the span is): the bar takes the width the
    # other columns leave, at least _MIN_BAR cells. An error span's error goes on a line
    # of its own under its bar, so it never pushes the columns apart.
    rows = [(span, depth, format_seconds(span.duration)) for span, depth in tree_order(spans)]
    name_width = max(len("span"), *(2 * depth + len(span.name) for span, depth, _ in rows))
    service_width = max(len("service"), *(len(s.service) for s in spans))
    duration_width = max(len("duration"), *(len(d) for _, _, d in rows))
    # Only a name too long to leave the bar its minimum is cut.
    name_width = min(
        name_width, max(_MIN_NAME, width - service_width - duration_width - _GAPS - _MIN_BAR)
    )
    bar_width = max(_MIN_BAR, width - name_width - service_width - duration_width - _GAPS)
    table = Table(
        Column("span", no_wrap=True, overflow="ellipsis", width=name_width),
        Column("service", no_wrap=True, style="dim", width=service_width),
        Column("duration", no_wrap=True, justify="right", width=duration_width),
        Column("", no_wrap=True, overflow="ellipsis", width=bar_width),
        box=None,
        pad_edge=False,
        header_style="dim",
    )
    for span, depth, duration in rows:
        name = Text("  " * depth + span.name)
        table.add_row(name, span.service, duration, _bar(span, t0, extent, bar_width))
        if span.status == "error" and (err := _error_text(span)):
            table.add_row("", "", "", Text(err, style="dim red"))
    return Group(header, table)
