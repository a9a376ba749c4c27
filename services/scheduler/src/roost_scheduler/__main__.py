"""``python -m roost_scheduler``: run one scheduler replica."""

from __future__ import annotations

import logging

from roost_scheduler.consumer import Scheduler, install_signal_handlers
from roost_scheduler.settings import SchedulerSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    scheduler = Scheduler(SchedulerSettings())
    install_signal_handlers(scheduler)
    scheduler.run_forever()


if __name__ == "__main__":
    main()
