"""What a schedule names (issue #19): a workflow by name, or one defined in code, which
is registered first and checks the input against its model, as ``wf.run`` does; shared
by ``roost.crons`` and ``roost.scheduled``."""

from __future__ import annotations

from typing import Any, Protocol

# The api's largest page: listing everything takes as few requests as it can.
PAGE = 500


class WorkflowLike(Protocol):
    """A workflow defined in code (``roost.workflow(...)``): a schedule made from one
    registers it first and checks the input against its model, as ``wf.run`` does."""

    @property
    def name(self) -> str: ...

    def validate_input(self, run_input: Any) -> Any: ...

    def register(self) -> str: ...

    async def aio_register(self) -> str: ...


Target = str | WorkflowLike


def name_of(workflow: Target) -> str:
    return workflow if isinstance(workflow, str) else workflow.name


def input_for(workflow: Target, run_input: Any) -> Any:
    """The run input as sent: checked against the model of a workflow defined in code
    (a name's input is checked by the api alone)."""
    payload = {} if run_input is None else run_input
    return payload if isinstance(workflow, str) else workflow.validate_input(payload)


def page_params(workflow: Target | None, status: str | None, cursor: str | None) -> dict[str, Any]:
    """The query of one page of a list that is read to its end (by ``next_cursor``)."""
    values = {
        "workflow": None if workflow is None else name_of(workflow),
        "status": status,
        "cursor": cursor,
        "limit": PAGE,
    }
    return {k: v for k, v in values.items() if v is not None}
