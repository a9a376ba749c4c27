"""``python -m roost_ratelimiter``: run one ratelimiter replica."""

from __future__ import annotations

from roost_core import logs
from roost_core.service import run_until_stopped
from roost_ratelimiter.service import Ratelimiter
from roost_ratelimiter.settings import RatelimiterSettings


def main() -> None:
    logs.configure("ratelimiter")
    settings = RatelimiterSettings()
    run_until_stopped(
        "ratelimiter",
        broker_url=settings.broker_url,
        namespace=settings.namespace,
        make=lambda: Ratelimiter(settings),
    )


if __name__ == "__main__":
    main()
