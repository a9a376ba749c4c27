"""Run metadata: string key/value pairs attached to a run to find it by later
(``meta.repo=beads``). One set of rules for every client: the api checks them, the SDK
and the CLI check them before sending, so a bad pair is refused with its name."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,63}")
MAX_PAIRS = 32
MAX_VALUE = 512


def check(metadata: dict[str, str]) -> dict[str, str]:
    """Return ``metadata`` if every pair is valid; raise ValueError naming the bad one."""
    if len(metadata) > MAX_PAIRS:
        raise ValueError(f"at most {MAX_PAIRS} metadata pairs, not {len(metadata)}")
    for key, value in metadata.items():
        if not KEY_RE.fullmatch(key):
            raise ValueError(
                f"metadata key {key!r} must be 1-64 letters, digits, '_', '.', '-' or '/'"
                " (not starting with '.', '-' or '/')"
            )
        if len(value) > MAX_VALUE:
            raise ValueError(f"metadata {key!r}: value longer than {MAX_VALUE} characters")
    return metadata


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``["repo=beads", "team=infra"]`` (the CLI's ``--meta``) as metadata."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"metadata {pair!r} is not KEY=VALUE")
        out[key] = value
    return check(out)


Metadata = Annotated[
    dict[str, str],
    AfterValidator(check),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_PAIRS,
            "propertyNames": {"pattern": f"^{KEY_RE.pattern}$"},
            "additionalProperties": {"type": "string", "maxLength": MAX_VALUE},
        },
        mode="validation",
    ),
]


# What a trigger adds about itself (which cron, schedule or event started the run): a
# child run takes its parent run's metadata, but not these, which are not its own.
_PROVENANCE = ("event_id", "event_key")


def inherited(metadata: dict[str, str]) -> dict[str, str]:
    """The metadata a child run takes from its parent's: the pairs its triggers gave,
    without the ``roost.*`` pairs and event ids a schedule or an event added."""
    return {
        k: v for k, v in metadata.items() if not k.startswith("roost.") and k not in _PROVENANCE
    }


def schedule_trigger(metadata: dict[str, str]) -> dict[str, str] | None:
    """The schedule that started a run, from the metadata its fire gave it
    (roost_core.engine.fire): ``{"kind": "cron", "cron_id", "cron", "fire_at"}`` or
    ``{"kind": "scheduled", "scheduled_id"}``; None for a run started otherwise."""
    if "roost.cron_id" in metadata:
        return {
            "kind": "cron",
            "cron_id": metadata["roost.cron_id"],
            "cron": metadata.get("roost.cron", ""),
            "fire_at": metadata.get("roost.fire_at", ""),
        }
    if "roost.scheduled_id" in metadata:
        return {"kind": "scheduled", "scheduled_id": metadata["roost.scheduled_id"]}
    return None
