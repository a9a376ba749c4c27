"""A span made straight in the span store's record form, for a hot path, when the span
store is the only place spans go (no collector: ``tracing.store_only()``).

An OpenTelemetry SDK span costs a worker about a sixth of a no-op task's CPU (its
attributes are copied and checked, its processors run, and the span store's shipper then
turns it into a record); a worker makes one per attempt (issue #17). This span is a
:class:`NonRecordingSpan` as far as OpenTelemetry is concerned, so that it can be made
current: a span the task starts is its child (the SDK reads only its context), and
``tracing.RunScope`` gives that child the run's id from this span's ``attributes``. What
the task does to it (attributes, events, an exception, a status) is kept, and
:meth:`LightSpan.end` ships it as one record, the same as the SDK span would have been.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes

from roost_core.spans import WireSpan


def parse_traceparent(carrier: Mapping[str, str] | None) -> tuple[str, str] | None:
    """The trace id and parent span id (hex) of a sampled W3C ``traceparent``, or None
    (absent, malformed or not sampled: the caller makes an SDK span, which knows what to
    do with each)."""
    parts = (carrier or {}).get("traceparent", "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        if int(parts[1], 16) == 0 or int(parts[2], 16) == 0 or not int(parts[3], 16) & 1:
            return None
    except ValueError:
        return None
    return parts[1], parts[2]


class LightSpan(NonRecordingSpan):
    """A child of ``parent`` (trace id, span id) that ends as one span-store record."""

    def __init__(
        self, parent: tuple[str, str], name: str, kind: str, attributes: dict[str, Any]
    ) -> None:
        trace_id, self._parent_span_id = parent
        self._span_id = random.getrandbits(64) or 1
        super().__init__(
            SpanContext(
                trace_id=int(trace_id, 16),
                span_id=self._span_id,
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        )
        self._trace_id = trace_id
        self._name = name
        self._kind = kind
        self.attributes = attributes  # tracing.RunScope reads the run id here
        self._start = time.time()
        self._status = "unset"
        self._status_message: str | None = None
        self._events: list[dict[str, Any]] = []

    def is_recording(self) -> bool:
        return True

    def set_attribute(self, key: str, value: Any) -> None:
        # What OpenTelemetry allows (the SDK drops anything else): a primitive, or a
        # sequence of them, which goes out as a JSON list.
        if isinstance(value, str | bool | int | float):
            self.attributes[key] = value
        elif isinstance(value, list | tuple) and all(
            isinstance(v, str | bool | int | float) for v in value
        ):
            self.attributes[key] = list(value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        at = time.time() if timestamp is None else timestamp / 1e9
        details = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in (attributes or {}).items()
            if isinstance(v, str | bool | int | float | tuple | list)
        }
        self._events.append({"name": name, "at": at, "attributes": details})

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # The attributes OpenTelemetry's SDK gives an exception event.
        details: dict[str, Any] = {
            "exception.type": type(exception).__name__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            ),
            "exception.escaped": str(escaped),
        }
        details.update(attributes or {})
        self.add_event("exception", details, timestamp)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
        if code is StatusCode.ERROR:
            self._status, self._status_message = "error", description
        elif code is StatusCode.OK:
            self._status, self._status_message = "ok", None

    def record(self, service: str, end: float | None = None) -> WireSpan:
        """The finished span in the span store's record form."""
        return {
            "run_id": self.attributes.get("roost.run_id"),
            "trace_id": self._trace_id,
            "span_id": format(self._span_id, "016x"),
            "parent_span_id": self._parent_span_id,
            "name": self._name,
            "service": service,
            "kind": self._kind,
            "start": self._start,
            "end": time.time() if end is None else end,
            "status": self._status,
            "status_message": self._status_message,
            "attributes": self.attributes,
            "events": self._events,
        }
