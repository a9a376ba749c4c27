"""Event keys and the patterns workflows subscribe to them with (pure functions).

A key names something that happened (``task:ready``, ``orders/eu.created``). A pattern
is a key in which ``*`` matches any run of characters, including none: ``task:*``
matches ``task:ready`` and ``task:``; ``*`` matches every key. Nothing else is special.
"""

from __future__ import annotations

import re

MAX_LENGTH = 200
KEY_RE = re.compile(r"[A-Za-z0-9_.:/-]+")
# The same rule as a JSON Schema pattern, for the api's document.
KEY_PATTERN = rf"^[A-Za-z0-9_.:/-]{{1,{MAX_LENGTH}}}$"
PATTERN_RE = re.compile(r"[A-Za-z0-9_.:/*-]+")
WILDCARD = "*"


def check_event_key(key: object) -> str:
    """Return ``key`` if it is a usable event key; raise ValueError naming it if not."""
    if not isinstance(key, str) or not key or len(key) > MAX_LENGTH or not KEY_RE.fullmatch(key):
        raise ValueError(
            f"event key {key!r} is invalid: use 1-{MAX_LENGTH} letters, digits, "
            "'_', '.', ':', '/' or '-'"
        )
    return key


def check_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a usable event-key pattern; raise ValueError naming it
    if not."""
    if (
        not isinstance(pattern, str)
        or not pattern
        or len(pattern) > MAX_LENGTH
        or not PATTERN_RE.fullmatch(pattern)
    ):
        raise ValueError(
            f"event pattern {pattern!r} is invalid: use 1-{MAX_LENGTH} letters, digits, "
            "'_', '.', ':', '/', '-' or the wildcard '*'"
        )
    return pattern


def event_key_matches(pattern: str, key: str) -> bool:
    """Whether ``key`` matches ``pattern`` (``*`` matches any run of characters).

    Greedy matching with one backtracking point: at most len(pattern) * len(key)
    steps, whatever the pattern (a regular expression with many ``.*`` could take far
    longer)."""
    p = k = 0
    star = -1  # position in pattern just after the last '*' seen
    star_k = 0  # position in key that '*' currently extends to
    while k < len(key):
        if p < len(pattern) and pattern[p] == WILDCARD:
            star, star_k = p + 1, k
            p += 1
        elif p < len(pattern) and pattern[p] == key[k]:
            p += 1
            k += 1
        elif star >= 0:
            # Let the last '*' swallow one more character and try again from there.
            star_k += 1
            k = star_k
            p = star
        else:
            return False
    while p < len(pattern) and pattern[p] == WILDCARD:
        p += 1
    return p == len(pattern)


def matches_any(patterns: list[str], key: str) -> bool:
    """Whether ``key`` matches at least one of ``patterns``."""
    return any(event_key_matches(pattern, key) for pattern in patterns)
