"""Child runs (issue #18) on a run's page: the run's parent (the task it was triggered
inside) and its children, which the page keeps current.

A child's status changes are events of the child's own run, not of the page's run, so
the page does not see them on its stream. Instead its script reads ``/runs/{id}/children``
(below) when the page's run has news (one of its events: a task started, asked to
wait, ended) and every few seconds while a child is still active or the run is still
going (it may yet trigger more), stopping once the run and all its children have ended
(static/dashboard.js ``liveChildren``).

That read is the api's ``GET /api/v1/runs/{id}``: it is the one that gives each child
with its spawning task and key, oldest first, as the page first drew them (the list of
runs by ``parent_run_id`` has neither, and lists newest first)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from roost_core.statuses import RUN_FINAL
from roost_dashboard.site import call

# How many of a run's children its page lists (oldest first); the runs page, filtered by
# parent, lists them all.
SHOWN = 100


def family(run: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of ``run``'s children (as the api gave the run): the first
    :data:`SHOWN` of them, how many there are in all, and how many have not ended."""
    children = run.get("children") or []
    # The api lists the first 100 and counts them all, by status.
    counts: dict[str, int] = run.get("children_by_status") or {}
    if not counts:
        counts = {}
        for c in children:
            counts[c["status"]] = counts.get(c["status"], 0) + 1
    return {
        "status": run["status"],
        "total": sum(counts.values()),
        "active": sum(n for status, n in counts.items() if status not in RUN_FINAL),
        "children": children[:SHOWN],
    }


async def run_children(request: Request) -> Response:
    """A run's children as its page's script reads them (:func:`family`), JSON."""
    found = await call(request, "GET", f"/api/v1/runs/{request.path_params['run_id']}")
    return JSONResponse(family(found), headers={"Cache-Control": "no-store"})
