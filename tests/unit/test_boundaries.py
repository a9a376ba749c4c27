"""Services never import each other; the core and SDK import no service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_top_level_folders_are_not_importable_packages() -> None:
    # `shared` or `services` as packages would shadow the installed ones from the repo root.
    for folder in ("shared", "services", "tests"):
        assert not (REPO / folder / "__init__.py").exists(), folder
