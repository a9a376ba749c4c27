"""``python -m roost_scheduler``: run one scheduler replica."""

from __future__ import annotations

from roost_core import logs, tracing
from roost_scheduler.consumer import Scheduler, install_signal_handlers
from roost_scheduler.settings import SchedulerSettings


def main() -> None:
    logs.configure("scheduler")
    settings = SchedulerSettings()
    tracing.setup("scheduler", broker_url=settings.broker_url, namespace=settings.namespace)
    scheduler = Scheduler(settings)
    install_signal_handlers(scheduler)
    scheduler.run_forever()
    tracing.shutdown()


if __name__ == "__main__":
    main()
