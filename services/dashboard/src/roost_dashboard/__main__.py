"""``python -m roost_dashboard``: serve the dashboard with uvicorn."""

from __future__ import annotations

import uvicorn

from roost_core import logs
from roost_dashboard.app import create_app
from roost_dashboard.settings import DashboardSettings


def main() -> None:
    logs.configure("dashboard")
    settings = DashboardSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.dashboard_host,
        port=settings.dashboard_port,
        log_level="warning",
        log_config=None,  # uvicorn's loggers go through ours (roost_core.logs)
        access_log=False,
    )


if __name__ == "__main__":
    main()
