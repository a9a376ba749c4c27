"""The client object users start from: ``roost = Roost()``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from roost._http import ApiClient
from roost._runs import Runs
from roost._settings import ClientSettings
from roost._worker import Worker
from roost._workflow import Workflow


class Roost:
    """Entry point of the SDK. Settings come from ROOST_API_URL, ROOST_TOKEN,
    ROOST_BROKER_URL and ROOST_NAMESPACE unless given here."""

    def __init__(self, **settings: Any) -> None:
        self.settings = ClientSettings(**settings)
        self._api: ApiClient | None = None
        self._runs: Runs | None = None

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            self._api = ApiClient(self.settings)
        return self._api

    @property
    def runs(self) -> Runs:
        """Read, list and wait for runs."""
        if self._runs is None:
            self._runs = Runs(self.api)
        return self._runs

    def workflow(self, name: str, *, input_validator: type[BaseModel] | None = None) -> Workflow:
        """Define a workflow; add tasks with ``@wf.task(parents=[...])``."""
        return Workflow(self, name, input_validator=input_validator)

    def worker(self, name: str, workflows: list[Workflow], slots: int = 8) -> Worker:
        """A worker serving ``workflows`` with ``slots`` concurrent tasks per process."""
        return Worker(self, name, workflows, slots=slots)

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
            self._runs = None
