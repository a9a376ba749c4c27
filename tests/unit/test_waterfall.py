"""The trace waterfall (`roost._waterfall`) lays a run's spans out as a tree with time bars."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from roost._models import RunTrace, Span, SpanEvent
from roost._waterfall import format_seconds, render, tree_order

T0 = 1_700_000_000.0
BAR_CHARS = "█▏"


def _span(
    span_id: str,
    name: str,
    start: float,
    end: float,
    parent: str | None = None,
    service: str = "roost-worker",
    status: str = "ok",
    **extra: Any,
) -> Span:
    return Span(
        run_id="r1",
        trace_id="t1",
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        service=service,
        kind="internal",
        start=T0 + start,
        end=T0 + end,
        status=status,
        **extra,
    )


def _trace(spans: list[Span], status: str = "FAILED") -> RunTrace:
    return RunTrace.model_validate(
        {"run_id": "r1", "status": status, "trace_id": "t1", "spans": spans}
    )


def _spans() -> list[Span]:
    # Stored in start order, as the api returns them; the tree order differs.
    return [
        _span("root", "run wf", 0.0, 2.0, service="roost-api"),
        _span("q", "queue a", 0.05, 0.3, parent="root", service="roost-scheduler"),
        _span("ta", "task wf.a", 0.3, 1.8, parent="root"),
        _span("orphan", "orphan op", 0.4, 0.45, parent="missing"),
        _span("clone", "clone", 0.5, 0.75, parent="ta"),
        _span(
            "err",
            "task wf.b",
            1.0,
            1.0,
            parent="root",
            status="error",
            status_message="something failed",
            events=[
                SpanEvent(
                    name="exception",
                    at=T0 + 1.0,
                    attributes={"exception.type": "ValueError", "exception.message": "boom"},
                )
            ],
        ),
    ]


def _text(trace: RunTrace, width: int = 100, console_width: int = 120) -> str:
    console = Console(record=True, width=console_width, color_system=None)
    console.print(render(trace, width=width))
    return console.export_text()


def _line(text: str, name: str) -> str:
    """The one line whose name cell is ``name`` (after its indentation)."""
    found = [ln for ln in text.splitlines() if ln.lstrip().startswith(name + " ")]
    assert len(found) == 1, (name, text)
    return found[0]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _bar_start(line: str) -> int:
    return min(line.index(c) for c in BAR_CHARS if c in line)


def test_tree_order_puts_children_under_parents_by_start() -> None:
    order = [(s.name, d) for s, d in tree_order(_spans())]
    assert order == [
        ("run wf", 0),
        ("queue a", 1),
        ("task wf.a", 1),
        ("clone", 2),
        ("task wf.b", 1),
        ("orphan op", 0),
    ]


def test_render_lines_follow_tree_order_and_indent_by_depth() -> None:
    text = _text(_trace(_spans()))
    lines = {n: _line(text, n) for n in ("run wf", "queue a", "task wf.a", "clone", "orphan op")}
    pos = [text.index(lines[n]) for n in ("run wf", "queue a", "task wf.a", "clone", "orphan op")]
    assert pos == sorted(pos)
    assert _indent(lines["queue a"]) == _indent(lines["run wf"]) + 2
    assert _indent(lines["task wf.a"]) == _indent(lines["run wf"]) + 2
    assert _indent(lines["clone"]) == _indent(lines["task wf.a"]) + 2
    assert _indent(lines["orphan op"]) == _indent(lines["run wf"])  # a root, parent missing


def test_every_span_appears_once_with_service_and_duration() -> None:
    text = _text(_trace(_spans()))
    for name in ("run wf", "queue a", "task wf.a", "clone", "task wf.b", "orphan op"):
        assert text.count(name) == 1, name
    assert "roost-scheduler" in _line(text, "queue a")
    assert "250.0 ms" in _line(text, "clone")
    assert "1.50 s" in _line(text, "task wf.a")
    assert "2.00 s" in _line(text, "run wf")
    assert "0.0 ms" in _line(text, "task wf.b")


def test_header_names_run_status_trace_span_count_and_extent() -> None:
    header = _text(_trace(_spans())).splitlines()[0]
    for part in ("r1", "FAILED", "t1", "6 spans", "2.00 s"):
        assert part in header


def _next_line(text: str, name: str) -> str:
    """The line under a span's: where an error span's error goes."""
    lines = text.splitlines()
    return lines[lines.index(_line(text, name)) + 1]


def test_error_span_shows_the_exception_under_its_bar() -> None:
    text = _text(_trace(_spans()))
    error = _next_line(text, "task wf.b")
    assert error.strip() == "ValueError: boom"
    assert error.index("ValueError") >= _bar_start(_line(text, "run wf"))  # in the bar column
    assert "ValueError" not in _next_line(text, "task wf.a")


def test_error_span_without_exception_event_shows_status_message() -> None:
    spans = [_span("a", "call", 0, 1, status="error", status_message="HTTP 503")]
    assert _next_line(_text(_trace(spans)), "call").strip() == "HTTP 503"


def test_long_error_text_is_cut_short() -> None:
    spans = [_span("a", "call", 0, 1, status="error", status_message="x" * 500)]
    line = _next_line(_text(_trace(spans), width=200, console_width=200), "call")
    assert "x" * 59 + "…" in line
    assert "x" * 61 not in line


def test_later_spans_bars_start_further_right() -> None:
    text = _text(_trace(_spans()))
    starts = [_bar_start(_line(text, n)) for n in ("run wf", "queue a", "task wf.a", "clone")]
    assert starts[0] < starts[1] < starts[2] < starts[3]
    assert _bar_start(_line(text, "task wf.b")) > starts[3]


def test_bar_length_follows_duration_and_zero_duration_still_shows() -> None:
    text = _text(_trace(_spans()))
    root = _line(text, "run wf")
    # The bar takes what the columns leave: 100 - 11 (names) - 15 - 8 - 6 (gaps) = 60.
    assert root.count("█") == 60  # the whole run: the whole bar
    assert _line(text, "task wf.a").count("█") == 45  # 1.5 s of 2 s
    zero = _line(text, "task wf.b")
    assert zero.count("▏") == 1 and "█" not in zero


def test_bar_is_never_narrower_than_the_minimum() -> None:
    text = _text(_trace(_spans()), width=30)
    assert _line(text, "run wf").count("█") == 20


def test_names_are_whole_and_only_one_too_long_for_the_bar_is_cut() -> None:
    whole = _text(_trace([_span("a", "task pipeline.check-deps", 0, 1)]), width=80)
    assert "task pipeline.check-deps" in whole and "…" not in whole
    spans = [_span("a", "n" * 300, 0, 1), _span("b", "short", 0.5, 1)]
    text = _text(_trace(spans))
    assert "…" in text
    assert _line(text, "short").count("█") == 10  # half of the minimum 20-cell bar
    assert max(len(ln) for ln in text.splitlines()) <= 100


def test_empty_trace_says_no_spans_yet() -> None:
    text = _text(_trace([], status="RUNNING"))
    assert "0 spans" in text.splitlines()[0]
    assert "No spans are stored" in text
    assert "ROOST_TRACE_STORE=false" in text


def test_parent_cycle_terminates_and_shows_each_span_once() -> None:
    spans = [
        _span("a", "alpha", 0.0, 1.0, parent="b"),
        _span("b", "beta", 0.1, 0.5, parent="a"),
        _span("c", "gamma", 0.2, 0.3, parent="c"),  # its own parent
        _span("r", "root", 0.0, 2.0),
        _span("d", "delta", 0.3, 0.4, parent="r"),
    ]
    order = tree_order(spans)
    assert sorted(s.span_id for s, _ in order) == ["a", "b", "c", "d", "r"]
    text = _text(_trace(spans))
    for name in ("alpha", "beta", "gamma", "root", "delta"):
        assert text.count(name) == 1, name


def test_all_spans_at_one_instant() -> None:
    spans = [_span("a", "one", 1.0, 1.0), _span("b", "two", 1.0, 1.0)]
    text = _text(_trace(spans))
    assert _bar_start(_line(text, "one")) == _bar_start(_line(text, "two"))


def test_format_seconds() -> None:
    assert format_seconds(0.0456) == "45.6 ms"
    assert format_seconds(0.25) == "250.0 ms"
    assert format_seconds(1.234) == "1.23 s"
    assert format_seconds(61.0) == "61.00 s"
