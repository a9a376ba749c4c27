"""Cron expressions and when they fire: pure functions, no I/O (issue #19).

Parsing and matching are cronsim's (it follows Debian's Vixie cron, DST included: a time
skipped by a spring-forward fires once just after the jump, a time repeated by a
fall-back fires once). Roost adds only what cronsim leaves out: the ``@hourly``-style
aliases, time zones by IANA name, and the decision of which due times a scheduler fires
(:func:`due_fires`), with the catch-up policy for times missed while every scheduler was
down.

An expression has five fields (minute hour day-of-month month day-of-week), or six with a
seconds field first (``*/2 * * * * *``: every two seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

CatchUp = Literal["latest", "all", "none"]
CATCH_UP: tuple[str, ...] = get_args(CatchUp)
#: With ``catch_up="all"``, at most this many missed times fire after an outage.
MAX_CATCH_UP = 100

# Vixie cron's aliases (@reboot has no meaning here).
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_ONE_SECOND = timedelta(seconds=1)


class CronExpressionError(ValueError):
    """A cron expression, time zone or catch-up policy that cannot be used; the message
    names the bad value (and the bad field of an expression)."""


def check_expression(expression: str) -> str:
    """The expression as it will be stored (an alias spelled out, spaces normalised);
    raise :class:`CronExpressionError` naming the bad field, or saying it never fires."""
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    if text.startswith("@"):
        raise CronExpressionError(
            f"cron expression {expression!r}: unknown alias; use one of {', '.join(ALIASES)}"
        )
    try:
        it = CronSim(text, datetime.now(UTC))
    except CronSimError as exc:
        raise CronExpressionError(
            f"cron expression {expression!r}: {_lower_first(str(exc))} (fields: minute hour "
            "day-of-month month day-of-week, or six with a seconds field first)"
        ) from None
    try:
        next(it)
    except StopIteration:  # cronsim looks 50 years ahead
        raise CronExpressionError(
            f"cron expression {expression!r} never fires (no matching date)"
        ) from None
    return text


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``); raise naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronExpressionError(
            f"time zone {name!r} is not an IANA time zone name (such as 'UTC' or 'Europe/Berlin')"
        ) from None


def check_catch_up(value: str) -> CatchUp:
    if value not in CATCH_UP:
        raise CronExpressionError(
            f"catch_up {value!r} must be one of {', '.join(repr(c) for c in CATCH_UP)}"
        )
    return value  # type: ignore[return-value]


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after``, in UTC."""
    return next(_forward(expression, timezone, after))


@dataclass(frozen=True)
class Fires:
    """What a scheduler does with one due cron."""

    fire_at: list[datetime]  # the times to fire now, oldest first (UTC)
    missed: int  # times that were missed and not fired (at least this many if capped)
    capped: bool  # more were missed than the policy fires (catch_up="all" caps them)
    next_at: datetime  # the cron's next fire time after these


def due_fires(
    expression: str,
    timezone: str,
    next_at: datetime,
    now: datetime,
    catch_up: CatchUp,
    grace: float,
    cap: int = MAX_CATCH_UP,
) -> Fires:
    """Which fire times of a cron whose next fire time is ``next_at`` fire at ``now``.

    A time at most ``grace`` seconds old is on time and always fires (a busy scheduler
    is late, not absent). An older one was missed, while every scheduler was down:
    ``catch_up="latest"`` fires the latest missed time, ``"all"`` every missed time (at
    most ``cap``, the latest ones), ``"none"`` none of them."""
    if next_at > now:
        return Fires([], 0, False, next_at)
    late_cut = now - timedelta(seconds=grace)
    missed: list[datetime] = []  # newest first
    if next_at <= late_cut:
        # Backwards from the cut, so a long outage costs at most cap + 1 steps.
        start = late_cut.replace(microsecond=0) + _ONE_SECOND  # reverse is strictly before
        for t in _iterate(expression, timezone, start, reverse=True):
            if t < next_at or len(missed) > cap:
                break
            missed.append(t)
    seen = len(missed)
    capped = seen > cap
    del missed[cap:]
    on_time: list[datetime] = []
    after = max(late_cut.replace(microsecond=0), next_at - _ONE_SECOND)
    upcoming = _forward(expression, timezone, after)
    for t in upcoming:
        if t > now:
            following = t
            break
        on_time.append(t)
    if catch_up == "all":
        fire = missed[::-1]
    elif catch_up == "latest":
        fire = missed[:1]
    else:
        fire = []
    return Fires(fire + on_time, seen - len(fire), capped, following)


def _forward(expression: str, timezone: str, after: datetime) -> Iterator[datetime]:
    return _iterate(expression, timezone, after, reverse=False)


def _iterate(expression: str, timezone: str, start: datetime, reverse: bool) -> Iterator[datetime]:
    """Fire times strictly after (before, in reverse) ``start``, in UTC."""
    zone = ZoneInfo(timezone)
    for t in CronSim(expression, start.astimezone(zone), reverse=reverse):
        yield t.astimezone(UTC)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
