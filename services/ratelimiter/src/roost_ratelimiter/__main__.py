"""``python -m roost_ratelimiter``: run one ratelimiter replica."""

from __future__ import annotations

from roost_core import logs, tracing
from roost_ratelimiter.service import Ratelimiter, install_signal_handlers
from roost_ratelimiter.settings import RatelimiterSettings


def main() -> None:
    logs.configure("ratelimiter")
    settings = RatelimiterSettings()
    tracing.setup("ratelimiter", broker_url=settings.broker_url, namespace=settings.namespace)
    ratelimiter = Ratelimiter(settings)
    install_signal_handlers(ratelimiter)
    ratelimiter.run_forever()
    tracing.shutdown()


if __name__ == "__main__":
    main()
