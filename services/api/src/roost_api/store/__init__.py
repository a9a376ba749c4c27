"""The api's reads and writes, a module per resource. Every transition of a run lives in
the engine core (roost_core.engine); what is here reads, lists and shapes for HTTP."""

from roost_api.store.approvals import decide_approval, get_approval, list_approvals
from roost_api.store.children import child_idempotency_key, resolve_parents
from roost_api.store.create import (
    CreatedRun,
    RunRequest,
    Trigger,
    create_runs,
    run_spans_end_after,
)
from roost_api.store.events import (
    EventRequest,
    Pushed,
    get_pushed_event,
    list_pushed_events,
    push_events,
    pushed_events_by_idempotency_key,
)
from roost_api.store.operations import activity, list_workers
from roost_api.store.rate_limits import (
    check_admissible,
    check_dynamic_keys,
    list_limits,
    put_limit,
    uses_named_limits,
    window_seconds,
)
from roost_api.store.runs import (
    cancel_run,
    cancel_task,
    cancelled_attempts,
    get_run,
    list_runs,
    replay_run,
    run_status,
    run_trace,
    task_logs,
)
from roost_api.store.workflows import (
    VersionCache,
    WorkflowVersion,
    find_version,
    list_workflows,
    register_workflow,
    triggered_versions,
    workflow_stats,
)

__all__ = [
    "child_idempotency_key",
    "resolve_parents",
    "decide_approval",
    "get_approval",
    "list_approvals",
    "check_admissible",
    "uses_named_limits",
    "check_dynamic_keys",
    "list_limits",
    "put_limit",
    "window_seconds",
    "CreatedRun",
    "EventRequest",
    "Pushed",
    "RunRequest",
    "Trigger",
    "VersionCache",
    "WorkflowVersion",
    "activity",
    "cancel_run",
    "cancel_task",
    "cancelled_attempts",
    "create_runs",
    "find_version",
    "get_pushed_event",
    "get_run",
    "list_pushed_events",
    "list_runs",
    "list_workers",
    "list_workflows",
    "push_events",
    "pushed_events_by_idempotency_key",
    "register_workflow",
    "replay_run",
    "run_spans_end_after",
    "run_status",
    "run_trace",
    "task_logs",
    "triggered_versions",
    "workflow_stats",
]
