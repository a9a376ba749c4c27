"""What the api's endpoints share to read a request: query parameters, cursors, and input
checks (the request bodies' models are in ``roost_core.api_models``). Every bad value gets
an error that names it."""

from __future__ import annotations

import base64
import math
import re
from datetime import UTC, datetime
from typing import Any, TypeVar

import jsonschema
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from roost_core.errors import (
    BadRequestError,
    BrokerUnavailableError,
    InvalidInputError,
    RoostError,
)
from roost_core.wire import WorkflowDefinition

M = TypeVar("M", bound=BaseModel)

Q = TypeVar("Q", bound=BaseModel)
# A JSON escape of NUL: \u0000 after an even number of backslashes (after an odd number
# it is the text "\u0000").
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def check_input(definition: WorkflowDefinition, run_input: Any) -> None:
    """Validate ``run_input`` against the workflow's input schema, naming the bad field."""
    if definition.input_schema is None:
        return
    validator = jsonschema.Draft202012Validator(definition.input_schema)
    errors = sorted(validator.iter_errors(run_input), key=lambda e: list(e.absolute_path))
    if errors:
        parts = []
        for err in errors:
            where = ".".join(str(p) for p in err.absolute_path) or "input"
            if err.validator == "required":
                missing = err.message.split("'")[1] if "'" in err.message else err.message
                where = ".".join([*(str(p) for p in err.absolute_path), missing])
                parts.append(f"{where}: field required")
            else:
                parts.append(f"{where}: {err.message}")
        raise InvalidInputError(
            f"input for workflow {definition.name!r} is invalid: " + "; ".join(parts)
        )


async def parsed_body(request: Request, model: type[M], what: str) -> M:
    """The request's JSON body (none: ``{}``) as ``model``, strictly: a number is not a
    string, nor a boolean a number, as the OpenAPI document says. A BadRequestError
    naming every bad field, prefixed with ``what``, if it does not fit."""
    return validated_json(model, await storable_body(request), what, BadRequestError)


def validated_json(model: type[M], raw: bytes, what: str, error: type[RoostError]) -> M:
    """``raw`` as ``model``, strictly; a BadRequestError if it is not JSON at all, else an
    ``error`` naming every bad field, prefixed with ``what``."""
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            reason = first["ctx"].get("error", first["msg"]) if "ctx" in first else first["msg"]
            raise BadRequestError(f"request body is not valid JSON: {reason}") from None
        raise error(validation_message(exc, what)) from None


async def storable_body(request: Request) -> bytes:
    """The request's body (none: ``{}``), refused if it holds a NUL character, which no
    PostgreSQL text or jsonb value can hold (refused here, before it can fail a
    transaction other requests share)."""
    raw = await request.body()
    if b"\\u0000" in raw and _NUL.search(raw):
        raise BadRequestError("request body contains \\u0000 (NUL), which cannot be stored")
    return raw or b"{}"


def query_of(request: Request, model: type[Q]) -> Q:
    """The request's query parameters as ``model`` (``roost_api.params``); a
    BadRequestError naming each bad parameter and its value if they do not fit."""
    raw = {k: v for k, v in request.query_params.items() if k in model.model_fields}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        parts = []
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "query"
            message = e["msg"].removeprefix("Value error, ")
            parts.append(f"query parameter {name}={raw.get(name)!r}: {message}")
        raise BadRequestError("; ".join(parts)) from None


def validation_message(exc: ValidationError, what: str) -> str:
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    ]
    return f"{what}: " + "; ".join(parts)


def encode_cursor(created_at: str, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}|{run_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, run_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), run_id
    except Exception as exc:
        raise BadRequestError(f"cursor {cursor!r} is malformed") from exc


def float_param(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequestError(f"query parameter {name}={raw!r} is not a number") from None
    if math.isnan(value):
        raise BadRequestError(f"query parameter {name}={raw!r} is not a number")
    return value


def time_param(request: Request, name: str) -> datetime | None:
    """A time in a query parameter: ISO 8601 (a time without a zone is UTC) or unix
    seconds."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequestError(
            f"query parameter {name}={raw!r} is not a time (ISO 8601 or unix seconds)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"query parameter {name}={raw!r} is not a whole number") from None
    return min(max(value, low), high)


def broker_unavailable(exc: BaseException) -> RoostError:
    if isinstance(exc, RoostError):
        return exc
    return BrokerUnavailableError(f"RabbitMQ is unavailable: {type(exc).__name__} {exc}")
