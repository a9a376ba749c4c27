"""The api's OpenAPI 3.1 document, generated from what each endpoint declares with
``@operation``: the pydantic model its query parameters are parsed into
(``roost_api.http.query_of``), the model its body is parsed into (``parsed_body``), and
the models of what it answers (the ones the SDK reads answers into). No hand-kept copy:
a parameter exists in the document because the endpoint parses it. The test suite runs
schemathesis over the document against a running api, so the answers keep to it too.

Errors are declared once for all: every operation that needs a token can answer 401
and 503 (PostgreSQL or RabbitMQ away), every one that reads a body, a query or a path
can answer 400, each with :class:`ErrorBody`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Route

from roost_api.routing import endpoints_of
from roost_core.api_shapes import ErrorBody

E = TypeVar("E", bound=Callable[..., Any])
Reply = tuple[str, type[BaseModel] | None]  # (description, body model; None: no body)

_ATTRIBUTE = "__roost_operation__"
_REF = "#/components/schemas/{model}"
_CONVERTED = re.compile(r"{(\w+):\w+}")  # {key:path} -> {key}

# Every path parameter of the api, by name: one description and schema each, so that a
# name means the same thing on every route. A route with a name missing here is an error
# when the document is made (the test suite makes it).
PATH_PARAMETERS: dict[str, tuple[str, dict[str, Any]]] = {
    "run_id": ("the run's id", {"type": "string", "format": "uuid"}),
    "task": ("the task's name in its workflow", {"type": "string", "minLength": 1}),
    "name": ("the workflow's name", {"type": "string", "minLength": 1}),
    "key": (
        "the rate-limit key: 1-200 characters, letters, digits and _.:/@-",
        {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.:/@-]{0,199}$"},
    ),
    "event_id": ("the pushed event's id", {"type": "string", "format": "uuid"}),
    "cron_id": ("the cron's id", {"type": "string", "format": "uuid"}),
    "scheduled_id": ("the scheduled run's id", {"type": "string", "format": "uuid"}),
    "worker_id": ("the worker's id, name@host:pid", {"type": "string", "minLength": 1}),
    "approval_id": ("the approval's id", {"type": "string", "format": "uuid"}),
}

_UNAUTHENTICATED = "no API token, or one that is invalid or revoked"
_UNAVAILABLE = "PostgreSQL or RabbitMQ is unavailable: try again"
_BAD_REQUEST = "a malformed request: the message names the bad value"


@dataclass(frozen=True)
class Operation:
    """What one endpoint is, for the document."""

    summary: str
    tag: str
    ok: Mapping[int, Reply]
    description: str | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = True
    errors: Mapping[int, str] = field(default_factory=dict)
    public: bool = False  # needs no token
    operation_id: str | None = None  # default: the endpoint function's name


def operation(
    summary: str,
    *,
    tag: str,
    ok: Mapping[int, Reply],
    description: str | None = None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    errors: Mapping[int, str] | None = None,
    public: bool = False,
    operation_id: str | None = None,
) -> Callable[[E], E]:
    """Declare an endpoint's operation (see :class:`Operation`)."""
    spec = Operation(
        summary=summary,
        tag=tag,
        ok=ok,
        description=description,
        query=query,
        body=body,
        body_required=body_required,
        errors=errors or {},
        public=public,
        operation_id=operation_id,
    )

    def mark(endpoint: E) -> E:
        setattr(endpoint, _ATTRIBUTE, spec)
        return endpoint

    return mark


def declared(endpoint: Callable[..., Any]) -> Operation | None:
    found = getattr(endpoint, _ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


@dataclass(frozen=True)
class _Entry:
    path: str
    method: str
    route: Route
    op: Operation
    name: str


def _entries(routes: Sequence[BaseRoute]) -> list[_Entry]:
    found = []
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        path = _CONVERTED.sub(r"{\1}", route.path)
        for method, endpoint in endpoints_of(route).items():
            op = declared(endpoint)
            if op is None:
                raise ValueError(f"{method} {route.path} has no @operation: document it")
            name = op.operation_id or str(getattr(endpoint, "__name__", path))
            found.append(_Entry(path, method.lower(), route, op, name))
    return found


def _schemas(entries: list[_Entry]) -> tuple[dict[Any, Any], dict[str, Any]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ErrorBody, "serialization"): None
    }
    for e in entries:
        for model in (e.op.query, e.op.body):
            if model is not None:
                wanted[(model, "validation")] = None
        for _, reply in e.op.ok.values():
            if reply is not None:
                wanted[(reply, "serialization")] = None
    refs, defs = models_json_schema(list(wanted), ref_template=_REF)
    return dict(refs), dict(defs.get("$defs", {}))


def _component(ref: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].rsplit("/", 1)[-1]
    return dict(components[name])


def _parameters(e: _Entry, refs: Mapping[Any, Any], comps: dict[str, Any]) -> list[Any]:
    params: list[dict[str, Any]] = []
    for name in e.route.param_convertors:
        if name not in PATH_PARAMETERS:
            raise ValueError(f"path parameter {name!r} of {e.path} is not in PATH_PARAMETERS")
        description, schema = PATH_PARAMETERS[name]
        params.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": description,
                "schema": schema,
            }
        )
    if e.op.query is not None:
        model = _component(refs[(e.op.query, "validation")], comps)
        required = set(model.get("required", []))
        for name, prop in model.get("properties", {}).items():
            schema = {k: v for k, v in prop.items() if k not in ("title", "description")}
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in prop:
                param["description"] = prop["description"]
            param["schema"] = schema
            params.append(param)
    return params


def _json(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(e: _Entry, refs: Mapping[Any, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (description, model) in sorted(e.op.ok.items()):
        reply: dict[str, Any] = {"description": description}
        if model is not None:
            reply["content"] = _json(refs[(model, "serialization")])
        responses[str(status)] = reply
    errors = dict(e.op.errors)
    if e.op.body is not None or e.op.query is not None or e.route.param_convertors:
        errors.setdefault(400, _BAD_REQUEST)
    if not e.op.public:
        errors.setdefault(401, _UNAUTHENTICATED)
        errors.setdefault(503, _UNAVAILABLE)
    error = refs[(ErrorBody, "serialization")]
    for status, description in sorted(errors.items()):
        responses[str(status)] = {"description": description, "content": _json(error)}
    return responses


def document(routes: Sequence[BaseRoute], title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    entries = _entries(routes)
    refs, components = _schemas(entries)
    paths: dict[str, dict[str, Any]] = {}
    for e in entries:
        spec: dict[str, Any] = {
            "operationId": e.name,
            "summary": e.op.summary,
            "tags": [e.op.tag],
            "security": [] if e.op.public else [{"bearer": []}],
        }
        if e.op.description:
            spec["description"] = e.op.description
        parameters = _parameters(e, refs, components)
        if parameters:
            spec["parameters"] = parameters
        if e.op.body is not None:
            spec["requestBody"] = {
                "required": e.op.body_required,
                "content": _json(refs[(e.op.body, "validation")]),
            }
        spec["responses"] = _responses(e, refs)
        paths.setdefault(e.path, {})[e.method] = spec
    # Query models became parameters: their components would be dead weight.
    for e in entries:
        if e.op.query is not None:
            components.pop(refs[(e.op.query, "validation")]["$ref"].rsplit("/", 1)[-1], None)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "tags": [{"name": t} for t in sorted({e.op.tag for e in entries})],
    }
