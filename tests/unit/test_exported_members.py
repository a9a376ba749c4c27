"""`roost.__all__` is the whole public surface and stays true to the module."""

from __future__ import annotations

import types

import roost


def test_all_names_exist_and_every_public_attribute_is_listed() -> None:
    for name in roost.__all__:
        assert hasattr(roost, name), name
    public = {
        n
        for n in dir(roost)
        if not n.startswith("_") and not isinstance(getattr(roost, n), types.ModuleType)
    }
    assert public == set(roost.__all__)


def test_the_documented_surface_is_exported() -> None:
    for name in ("Roost", "Context", "RunFailedError", "RunStatus", "TaskStatus", "Worker"):
        assert name in roost.__all__
