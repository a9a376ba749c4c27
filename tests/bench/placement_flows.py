"""The placement benchmark's workflows (tests/bench/placement_bench.py, issue #21): the
same four-task line a -> b -> c -> d three times, plain (the shared queue), sticky
(``sticky="hard"``: every task on the process chosen for ``a``) and labelled (each task
requires ``zone == "z1"`` and prefers ``size >= 2``). Each task returns when it started
and ended (``time.time()``), the process it ran in and that process's zone and size.

Workers run ``roost worker bench.placement_flows:worker``. Each process's labels are
TEST_WORKER_LABELS (JSON); with PB_LABELS_BY_PID=1 each Dramatiq process (forked from
one ``roost worker``, so sharing its environment) sets its own after the fork from a
hash of its pid instead (pids need not alternate in parity): zone "z1" or "z2", about
half each, and size 0-7.
PB_SLOTS (default 4) is each process's slots: keep it equal to ``--threads``.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from typing import Any

from roost import Context, Label, Roost, Workflow

PLAIN = "pb-plain"
STICKY = "pb-sticky"
LABELLED = "pb-labelled"
DESIRED: dict[str, Label | str | int | float] = {
    "zone": Label("z1", required=True),
    "size": Label(2, comparator=">=", weight=5),
}


def labels_for(pid: int) -> dict[str, str | int]:
    """The labels a process gets from its pid under PB_LABELS_BY_PID=1."""
    h = zlib.crc32(pid.to_bytes(4, "little"))
    return {"zone": "z1" if h % 2 else "z2", "size": (h >> 1) % 8}


def stamp(input: Any, ctx: Context) -> dict[str, Any]:
    start = time.time()
    labels = worker.labels
    return {
        "start": start,
        "worker": ctx.worker_id,
        "zone": labels.get("zone"),
        "size": labels.get("size"),
        "end": time.time(),
    }


def _chain(name: str, **task_options: Any) -> Workflow:
    wf = roost.workflow(name, sticky=task_options.pop("sticky", None))
    previous = None
    for task in ("a", "b", "c", "d"):
        parents: list[Any] = [previous] if previous else []
        previous = wf.task(task, parents=parents, **task_options)(stamp)
    return wf


roost = Roost()
plain = _chain(PLAIN)
sticky = _chain(STICKY, sticky="hard")
labelled = _chain(LABELLED, desired_labels=DESIRED)
worker = roost.worker(
    "placement-bench",
    workflows=[plain, sticky, labelled],
    slots=int(os.environ.get("PB_SLOTS", "4")),
    labels=json.loads(os.environ.get("TEST_WORKER_LABELS", "{}")),
)


def _own_labels() -> None:
    worker.set_labels(labels_for(os.getpid()))


if os.environ.get("PB_LABELS_BY_PID") == "1":
    # `roost worker` imports this module once and Dramatiq forks its processes from it:
    # labels read at import time would be the same in all of them.
    os.register_at_fork(after_in_child=_own_labels)
