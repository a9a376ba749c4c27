"""Test workflows for placement (issue #21): sticky runs and labelled tasks. Workers run
this module as `roost worker roost_testapps.placement:NAME`, each process with the labels
in TEST_WORKER_LABELS (JSON); tests import it to trigger runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from roost import Context, Label, Roost, Workflow

roost = Roost()


def _hold(input: dict, ctx: Context, task: str) -> None:
    """Block while ``input["hold_dir"]`` has no ``release`` file (at most 60 s), after
    saying so with a ``<task>.<pid>`` file there: the test kills this process meanwhile."""
    hold = input.get("hold_dir")
    if not hold:
        return
    (Path(hold) / f"{task}.{os.getpid()}").write_text(ctx.worker_id)
    deadline = time.monotonic() + 60
    while not (Path(hold) / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _sticky(name: str, sticky: str) -> Workflow:
    """check → process → verify → commit, the seed's pipeline, sticky to one worker."""
    wf = roost.workflow(name, sticky=sticky)  # type: ignore[arg-type]

    @wf.task()
    def check(input: dict, ctx: Context) -> str:
        return ctx.worker_id

    @wf.task(parents=[check])
    def process(input: dict, ctx: Context) -> str:
        _hold(input, ctx, "process")
        return ctx.worker_id

    @wf.task(parents=[process])
    def verify(input: dict, ctx: Context) -> str:
        return ctx.worker_id

    @wf.task(parents=[verify])
    def commit(input: dict, ctx: Context) -> str:
        return ctx.worker_id

    return wf


sticky_hard = _sticky("p-sticky-hard", "hard")
sticky_soft = _sticky("p-sticky-soft", "soft")

labels = roost.workflow("p-labels")


@labels.task(
    desired_labels={
        "region": Label("eu", required=True),
        "memory_gb": Label(32, comparator=">=", weight=10),
    }
)
def in_eu(input: dict, ctx: Context) -> str:
    time.sleep(input.get("seconds", 0.02))
    return ctx.worker_id


needs_gpu = roost.workflow("p-needs-gpu")


@needs_gpu.task(desired_labels={"gpu": "h100"}, schedule_timeout=60)
def on_h100(input: dict, ctx: Context) -> str:
    return ctx.worker_id


needs_tpu = roost.workflow("p-needs-tpu")


@needs_tpu.task(desired_labels={"tpu": "v5"}, schedule_timeout=2)
def on_tpu(input: dict, ctx: Context) -> str:
    return ctx.worker_id


on_d = roost.workflow("p-on-d")


@on_d.task(desired_labels={"node": "d"})
def on_node_d(input: dict, ctx: Context) -> str:
    return ctx.worker_id


relabel = roost.workflow("p-relabel")


@relabel.task()
def set_labels(input: dict, ctx: Context) -> dict:
    """Replaces the labels of the process it runs in (pick it with the run's
    ``desired_labels``); returns that process's id."""
    labelled.set_labels(input["labels"])
    return {"worker_id": ctx.worker_id, "labels": labelled.labels}


prio = roost.workflow("p-priority")


@prio.task()
def record_start(input: dict, ctx: Context) -> dict:
    """Records when it started; the first run holds the worker's one slot (``hold_dir``)
    while the others queue."""
    start = time.time()
    _hold(input, ctx, "blocker")
    return {"start": start, "priority": input.get("p")}


prio_worker = roost.worker("prio", workflows=[prio], slots=1)

unserved = roost.workflow("p-unserved")  # no worker serves it: its messages stay queued


@unserved.task()
def never_runs(input: dict, ctx: Context) -> None:
    return None


sticky = roost.worker("sticky", workflows=[sticky_hard, sticky_soft], slots=4)
labelled = roost.worker(
    "labelled",
    workflows=[labels, needs_gpu, needs_tpu, on_d, relabel],
    slots=4,
    labels=json.loads(os.environ.get("TEST_WORKER_LABELS", "{}")),
)
