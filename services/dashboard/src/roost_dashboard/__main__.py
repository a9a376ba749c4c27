"""``python -m roost_dashboard``: serve the dashboard with uvicorn."""

from __future__ import annotations

from roost_core import logs
from roost_core.serving import serve
from roost_dashboard.app import create_app
from roost_dashboard.settings import DashboardSettings


def main() -> None:
    logs.configure("dashboard")
    settings = DashboardSettings()
    serve(create_app(settings), host=settings.dashboard_host, port=settings.dashboard_port)


if __name__ == "__main__":
    main()
