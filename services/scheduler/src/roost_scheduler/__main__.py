"""``python -m roost_scheduler``: run one scheduler replica."""

from __future__ import annotations

from roost_core import logs
from roost_core.service import run_until_stopped
from roost_scheduler.consumer import Scheduler
from roost_scheduler.settings import SchedulerSettings


def main() -> None:
    logs.configure("scheduler")
    settings = SchedulerSettings()
    run_until_stopped(
        "scheduler",
        broker_url=settings.broker_url,
        namespace=settings.namespace,
        make=lambda: Scheduler(settings),
    )


if __name__ == "__main__":
    main()
