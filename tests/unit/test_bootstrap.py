"""deploy/local/tools.sh, the first thing the README's commands run: it links a uv and a
just that are already installed, installs nothing twice, and, where a system package is
missing and apt is out of reach, stops with one line naming what to install."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from harness import REPO

# What tools.sh itself calls besides bash builtins.
UTILITIES = ("bash", "dirname", "mkdir", "id", "ln", "rm")


def _sandbox(tmp_path: Path, extra: dict[str, str]) -> tuple[Path, Path]:
    """A copy of the set-up scripts and a PATH of nothing but ``UTILITIES`` plus
    ``extra`` (name -> script text)."""
    repo = tmp_path / "repo"
    (repo / "deploy" / "local").mkdir(parents=True)
    for name in ("tools.sh", "lib.sh"):
        shutil.copy(REPO / "deploy" / "local" / name, repo / "deploy" / "local" / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in UTILITIES:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    for name, text in extra.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return repo, bin_dir


def _tools(repo: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "bash"), "deploy/local/tools.sh"],
        cwd=repo,
        env={"PATH": str(bin_dir), "HOME": str(repo)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_installed_uv_and_just_are_linked_and_a_second_run_changes_nothing(
    tmp_path: Path,
) -> None:
    fake = "#!/bin/sh\necho fake\n"
    repo, bin_dir = _sandbox(tmp_path, {"uv": fake, "just": fake})
    first = _tools(repo, bin_dir)
    assert (first.returncode, first.stdout, first.stderr) == (0, "", "")
    for tool in ("uv", "just"):
        link = repo / ".roost" / "tools" / "bin" / tool
        assert link.resolve() == (bin_dir / tool).resolve()
    second = _tools(repo, bin_dir)
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert not (repo / ".roost" / "tools" / "venv").exists()  # nothing was installed


def test_without_python_and_without_apt_it_says_in_one_line_what_to_install(
    tmp_path: Path,
) -> None:
    repo, bin_dir = _sandbox(tmp_path, {})
    done = _tools(repo, bin_dir)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "roost: Python 3 is missing: install it (on Debian: apt-get install python3),"
        " then run this again"
    ]


def test_an_old_python_is_named_with_its_version(tmp_path: Path) -> None:
    old = "#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.9.2'\nexit 1\n"
    repo, bin_dir = _sandbox(tmp_path, {"python3": old})
    done = _tools(repo, bin_dir)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"roost: Python 3.11 or newer is needed, {bin_dir / 'python3'} is Python 3.9.2"
    )


def test_the_bootstrap_installs_the_uv_the_image_installs() -> None:
    tools = (REPO / "deploy" / "local" / "tools.sh").read_text()
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    pinned = re.search(r"^UV_VERSION=(\S+)$", tools, re.M)
    image = re.search(r"^ARG UV_VERSION=(\S+)$", dockerfile, re.M)
    assert pinned and image
    assert pinned.group(1) == image.group(1)
