"""``python -m roost_ratelimiter``: run one ratelimiter replica."""

from __future__ import annotations

import logging

from roost_ratelimiter.service import Ratelimiter, install_signal_handlers
from roost_ratelimiter.settings import RatelimiterSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    ratelimiter = Ratelimiter(RatelimiterSettings())
    install_signal_handlers(ratelimiter)
    ratelimiter.run_forever()


if __name__ == "__main__":
    main()
