"""The suite runs as one pytest session over tests/ (the README's test command): two test
modules with one file name in different folders would stop it at collection, since the
folders are not packages."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_no_two_test_modules_share_a_file_name() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
