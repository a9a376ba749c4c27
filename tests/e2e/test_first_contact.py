"""First contact (issue 16): the README's first command, exactly as written, in a fresh
clone, with only Debian's own interpreter on PATH (PEP 668 and all), brings Roost up and
runs the example; a second run installs nothing; `deploy/just down` stops everything it
started. Its servers, database and vhost are this test's own (ports, names, a vhost),
passed as variables that deploy/local/up.sh reads, and removed afterwards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness import PG_ADMIN_URL, REPO, free_port, rabbitmqctl

DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def readme_commands() -> list[str]:
    """The commands of the README's first code block (under "Start here"), comments cut."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Start here.*?```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no bash block under 'Start here'"
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [c for c in commands if c]


def _pids(clone: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (clone / ".roost" / "pids").glob("*.pid")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().split(") ", 1)[1].startswith("Z"))


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh clone of this repository's committed HEAD, and the bare environment a new
    user's shell would have: Debian's PATH, a new HOME, and this test's own ports,
    database, namespace and vhost."""
    if not Path("/usr/bin/python3").exists() or shutil.which("rabbitmqctl") is None:
        pytest.fail("this test needs Debian's /usr/bin/python3 and rabbitmqctl")
    target = tmp_path / "roost"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True)
    tag = uuid.uuid4().hex[:8]
    vhost = f"roost_first_{tag}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": DEBIAN_PATH,
        "HOME": str(home),
        "ROOST_DEV_DATABASE": f"roost_first_{tag}",
        "ROOST_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "ROOST_NAMESPACE": f"first{tag}",
        "ROOST_API_PORT": str(free_port()),
        "ROOST_GATEWAY_PORT": str(free_port()),
        "ROOST_DASHBOARD_PORT": str(free_port()),
    }
    # The machine's package cache, if it has one: the same downloads, made once.
    cache = Path.home() / ".cache" / "uv"
    if cache.is_dir():
        env["UV_CACHE_DIR"] = str(cache)
    try:
        yield target, env
    finally:
        for pid in _pids(target).values():  # a failed test may leave processes behind
            if _alive(pid):
                os.kill(pid, 15)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{env["ROOST_DEV_DATABASE"]}" WITH (FORCE)')
        rabbitmqctl("delete_vhost", vhost)


def _run(command: str, cwd: Path, env: dict[str, str]) -> str:
    """``command`` as a new user types it: ``env -i ... bash -c``; its output."""
    done = subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "bash", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command!r} failed ({done.returncode}):\n{output[-4000:]}"
    return output


def test_the_readmes_first_command_runs_the_example_on_debians_python_and_down_stops_it(
    clone: tuple[Path, dict[str, str]],
) -> None:
    target, env = clone
    demo, test = readme_commands()[:2]
    assert demo.endswith(" demo") and test.endswith(" test"), readme_commands()

    first = _run(demo, target, env)
    assert re.search(r"^run [0-9a-f-]{36}: SUCCEEDED$", first, re.M), first[-3000:]
    started = _pids(target)
    assert {"api", "scheduler", "ratelimiter", "gateway", "dashboard"} <= set(started)
    assert all(_alive(pid) for pid in started.values()), started
    # Nothing went into the system's Python: the tools live in the clone.
    assert (target / ".roost" / "tools" / "bin" / "just").exists()
    assert (target / ".venv" / "bin" / "roost").exists()

    # Again: nothing left to install, the running services reused, the example run again.
    second = _run(demo, target, env)
    assert "installing" not in second, second[-3000:]
    assert re.search(r"^run [0-9a-f-]{36}: SUCCEEDED$", second, re.M), second[-3000:]
    assert _pids(target) == started

    down = demo.rsplit(" ", 1)[0] + " down"
    _run(down, target, env)
    assert [name for name, pid in started.items() if _alive(pid)] == []
    assert _pids(target) == {}
