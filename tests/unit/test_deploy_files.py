"""docker-compose.yml, deploy/Dockerfile and .dockerignore agree with the code.

There may be no Docker engine to run them, so they are checked by parsing: each
service's command against the real ``roost`` CLI, each ROOST_* variable against the
settings class that reads it, ports against the settings' defaults, and the image
recipe against the workspace it installs."""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from pydantic_settings import BaseSettings

from roost._settings import ClientSettings
from roost_api.settings import ApiSettings
from roost_core.settings import CoreSettings
from roost_dashboard.settings import DashboardSettings
from roost_gateway.settings import GatewaySettings
from roost_ratelimiter.settings import RatelimiterSettings
from roost_scheduler.settings import SchedulerSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

# The settings classes each Roost service builds from its environment.
SETTINGS_OF: dict[str, tuple[type[BaseSettings], ...]] = {
    "api": (ApiSettings,),
    "scheduler": (SchedulerSettings,),
    "gateway": (GatewaySettings,),
    "ratelimiter": (RatelimiterSettings,),
    "dashboard": (DashboardSettings,),
    "migrate": (CoreSettings, ClientSettings),
    "worker": (CoreSettings, ClientSettings),
}
API_PORT_DEFAULT = ApiSettings.model_fields["api_port"].default
GATEWAY_PORT_DEFAULT = GatewaySettings.model_fields["gateway_port"].default
DASHBOARD_PORT_DEFAULT = DashboardSettings.model_fields["dashboard_port"].default
# Services that talk to the api and the gateway over HTTP only: no broker, no database.
HTTP_ONLY = {"dashboard"}


# -- reading the files ----------------------------------------------------------------


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _roost_services() -> dict[str, dict[str, Any]]:
    """The services built from deploy/Dockerfile."""
    found = {}
    for name, svc in _services().items():
        build = svc.get("build")
        if isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile":
            found[name] = svc
    return found


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _interpolate(value: str) -> str:
    """What Compose substitutes for ``${VAR:-default}`` when VAR is unset."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def _env(svc: dict[str, Any]) -> dict[str, str]:
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): _interpolate("" if v is None else str(v)) for k, v in raw.items()}


def _published(svc: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(host port or None, container port) for each entry of ``ports``."""
    result: list[tuple[int | None, int]] = []
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            result.append((int(published) if published else None, int(entry["target"])))
            continue
        parts = _interpolate(str(entry)).split("/")[0].split(":")
        container = int(parts[-1])
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        result.append((host, container))
    return result


def _depends_on(svc: dict[str, Any]) -> dict[str, str]:
    raw = svc.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def _settings_env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    assert not cls.model_config.get("case_sensitive"), "names below assume case-insensitive"
    return {f"{prefix}{name}".upper() for name in cls.model_fields}


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _args_of(keyword: str) -> list[str]:
    return [args for kw, args in _dockerfile() if kw == keyword]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _is_group(command: Any) -> bool:
    # Typer may vendor its own click, so test for a group's shape, not click.Group.
    return isinstance(getattr(command, "commands", None), dict)


@pytest.fixture(scope="module")
def cli() -> Iterator[Any]:
    """The real ``roost`` CLI as click sees it (``typer.main.get_command``). Importing
    roost.cli makes ``cli`` an attribute of the roost package, which
    test_exported_members.py would count as public surface: undone afterwards."""
    import roost

    had_module, had_attribute = "roost.cli" in sys.modules, hasattr(roost, "cli")
    from roost.cli import app

    yield typer.main.get_command(app)
    if not had_attribute and hasattr(roost, "cli"):
        delattr(roost, "cli")
    if not had_module:
        sys.modules.pop("roost.cli", None)


def _parse_cli(cli: Any, argv: list[str]) -> Any:
    """Resolve ``roost ARGV`` to its command through the real Typer app and parse its
    arguments and options without running it (a usage error raises); the click context."""
    command = cli
    path = ["roost"]
    rest = list(argv)
    while _is_group(command):
        assert rest, f"`{' '.join(path)}` needs a sub-command"
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, (
            f"`{' '.join(path)} {name}` is not a roost command; it has {sorted(command.commands)}"
        )
        command, path = sub, [*path, name]
    return command.make_context(" ".join(path), rest)


def _cli_commands(cli: Any) -> set[str]:
    """Every runnable command of the CLI, sub-commands as 'token create'."""
    found: set[str] = set()

    def walk(group: Any, prefix: str) -> None:
        for name, cmd in group.commands.items():
            if _is_group(cmd):
                walk(cmd, f"{prefix}{name} ")
            else:
                found.add(f"{prefix}{name}")

    assert _is_group(cli), "the roost CLI should be a group of commands"
    walk(cli, "")
    return found


# -- docker-compose.yml ---------------------------------------------------------------


def test_the_compose_file_runs_migrate_api_scheduler_and_worker_from_the_roost_image() -> None:
    roost = _roost_services()
    assert set(roost) == set(SETTINGS_OF)
    for name, svc in roost.items():
        assert svc["build"].get("context", ".") == ".", name
        assert (REPO / svc["build"]["dockerfile"]).is_file(), name
    assert {"postgres", "rabbitmq"} <= set(_services())


def test_every_roost_service_command_is_a_real_roost_cli_command(cli: Any) -> None:
    commands = _cli_commands(cli)
    assert {"migrate", "api", "scheduler", "worker", "token create"} <= commands
    for name, svc in _roost_services().items():
        argv = svc.get("command")
        assert isinstance(argv, list) and argv, f"{name}: give command in exec (list) form"
        ctx = _parse_cli(cli, [str(a) for a in argv])
        assert ctx.info_name is not None
        assert ctx.info_name.removeprefix("roost ") in commands, name
    assert _parse_cli(cli, _services()["api"]["command"]).info_name == "roost api"
    assert _parse_cli(cli, _services()["scheduler"]["command"]).info_name == "roost scheduler"
    assert _parse_cli(cli, _services()["migrate"]["command"]).info_name == "roost migrate"
    assert _parse_cli(cli, _services()["dashboard"]["command"]).info_name == "roost dashboard"


def test_the_worker_runs_examples_beads_worker_as_2_processes_of_8_threads(cli: Any) -> None:
    ctx = _parse_cli(cli, _services()["worker"]["command"])
    assert ctx.info_name == "roost worker"
    assert ctx.params == {
        "target": "examples.beads:worker",
        "processes": 2,
        "threads": 8,
        "shutdown_grace": 30.0,
    }


def test_the_worker_target_is_a_module_on_disk_that_defines_a_roost_worker(cli: Any) -> None:
    target = _parse_cli(cli, _services()["worker"]["command"]).params["target"]
    module, _, attr = target.partition(":")
    parts = module.split(".")
    for i in range(1, len(parts)):
        package = REPO.joinpath(*parts[:i])
        assert (package / "__init__.py").is_file(), f"{package} is not a package"
    source = REPO.joinpath(*parts[:-1], f"{parts[-1]}.py")
    assert source.is_file(), f"{target}: no {source.relative_to(REPO)}"
    tree = ast.parse(source.read_text())
    made_by: list[ast.expr] = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name) and t.id == attr
    ]
    assert made_by, f"{source.relative_to(REPO)} assigns no top-level {attr!r}"
    call = made_by[-1]
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
    assert call.func.attr == "worker", f"{target} is not made by Roost.worker(...)"


def test_the_token_command_in_the_compose_header_is_a_real_roost_command(cli: Any) -> None:
    header = [line for line in COMPOSE_FILE.read_text().splitlines() if line.startswith("#")]
    runs = [re.search(r"docker compose run --rm (\S+) (.*?)\s*$", line) for line in header]
    found = [m for m in runs if m]
    assert found, "the header should say how to create a token with `docker compose run`"
    service, argv = found[0].group(1), shlex.split(found[0].group(2))
    assert service in _roost_services()
    assert _parse_cli(cli, argv).info_name == "roost token create"


def test_every_roost_variable_is_a_settings_field_of_the_service_it_is_given_to() -> None:
    for name, svc in _roost_services().items():
        known = set().union(*(_settings_env_names(cls) for cls in SETTINGS_OF[name]))
        given = {key for key in _env(svc) if key.startswith("ROOST_")}
        assert given, f"{name} gets no ROOST_* variable"
        assert given <= known, f"{name}: {sorted(given - known)} are read by none of " + ", ".join(
            cls.__name__ for cls in SETTINGS_OF[name]
        )


def test_each_service_environment_is_accepted_by_its_settings_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, svc in _roost_services().items():
        for cls in SETTINGS_OF[name]:
            with monkeypatch.context() as m:
                for key in _settings_env_names(cls):
                    m.delenv(key, raising=False)
                for key, value in _env(svc).items():
                    m.setenv(key, value)
                cls()  # raises a ValidationError on a bad value
    with monkeypatch.context() as m:
        for key in _settings_env_names(ClientSettings):
            m.delenv(key, raising=False)
        for key, value in _env(_services()["worker"]).items():
            m.setenv(key, value)
        assert ClientSettings().base_url() == f"http://api:{API_PORT_DEFAULT}"


def test_the_api_publishes_its_default_port_and_listens_on_every_interface() -> None:
    api = _services()["api"]
    env = _env(api)
    assert API_PORT_DEFAULT == 7077
    assert int(env["ROOST_API_PORT"]) == API_PORT_DEFAULT
    assert (API_PORT_DEFAULT, API_PORT_DEFAULT) in _published(api)
    assert env["ROOST_API_HOST"] == "0.0.0.0"  # the default 127.0.0.1 is unreachable


def test_the_api_healthcheck_asks_python_for_readiness_on_the_api_port() -> None:
    check = _services()["api"]["healthcheck"]["test"]
    assert check[0] == "CMD" and check[1] == "python", "the slim image has no curl"
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(check))
    assert [urlsplit(u).port for u in urls] == [API_PORT_DEFAULT]
    assert urlsplit(urls[0]).path == "/ready"  # ready means PostgreSQL answers too


def test_the_gateway_publishes_its_port_and_checks_readiness_on_it() -> None:
    gateway = _services()["gateway"]
    env = _env(gateway)
    assert int(env["ROOST_GATEWAY_PORT"]) == GATEWAY_PORT_DEFAULT == 7078
    assert env["ROOST_GATEWAY_HOST"] == "0.0.0.0"
    assert (GATEWAY_PORT_DEFAULT, GATEWAY_PORT_DEFAULT) in _published(gateway)
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(gateway["healthcheck"]["test"]))
    assert [(urlsplit(u).port, urlsplit(u).path) for u in urls] == [
        (GATEWAY_PORT_DEFAULT, "/ready")
    ]


def test_the_dashboard_publishes_its_port_and_checks_health_on_it() -> None:
    dashboard = _services()["dashboard"]
    env = _env(dashboard)
    assert int(env["ROOST_DASHBOARD_PORT"]) == DASHBOARD_PORT_DEFAULT == 8080
    assert env["ROOST_DASHBOARD_HOST"] == "0.0.0.0"
    assert (DASHBOARD_PORT_DEFAULT, DASHBOARD_PORT_DEFAULT) in _published(dashboard)
    check = dashboard["healthcheck"]["test"]
    assert check[0] == "CMD" and check[1] == "python", "the slim image has no curl"
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(check))
    assert [(urlsplit(u).port, urlsplit(u).path) for u in urls] == [
        (DASHBOARD_PORT_DEFAULT, "/health")  # the dashboard has no /ready
    ]


def test_the_dashboard_reaches_the_api_by_service_name_and_the_gateway_as_browsers_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = _services()
    with monkeypatch.context() as m:
        for key in _settings_env_names(DashboardSettings):
            m.delenv(key, raising=False)
        for key, value in _env(services["dashboard"]).items():
            m.setenv(key, value)
        settings = DashboardSettings()
    api = urlsplit(settings.api_url)
    assert (api.scheme, api.hostname, api.port) == ("http", "api", API_PORT_DEFAULT)
    # Browsers open the event streams themselves: the gateway as the host publishes it.
    gateway = urlsplit(settings.gateway_url)
    host_ports = [h for h, c in _published(services["gateway"]) if c == GATEWAY_PORT_DEFAULT]
    assert (gateway.scheme, gateway.hostname) == ("http", "127.0.0.1")
    assert host_ports and gateway.port == host_ports[0]


def test_the_http_only_services_get_neither_broker_nor_database() -> None:
    roost = _roost_services()
    assert set(roost) >= HTTP_ONLY
    for name in HTTP_ONLY:
        env = _env(roost[name])
        for key in ("ROOST_BROKER_URL", "ROOST_DATABASE_URL", "ROOST_NAMESPACE"):
            assert key not in env, f"{name} talks to the api and gateway only, yet gets {key}"


def test_the_worker_reaches_the_api_by_its_service_name_and_port() -> None:
    url = urlsplit(_env(_services()["worker"])["ROOST_API_URL"])
    assert (url.scheme, url.hostname, url.port) == ("http", "api", API_PORT_DEFAULT)


def test_postgres_is_published_on_host_port_5435() -> None:
    assert (5435, 5432) in _published(_services()["postgres"])


def test_the_broker_and_database_urls_point_at_the_compose_services() -> None:
    services = _services()
    pg_env = _env(services["postgres"])
    for name, svc in _roost_services().items():
        if name in HTTP_ONLY:
            continue
        env = _env(svc)
        broker = urlsplit(env["ROOST_BROKER_URL"])
        assert (broker.scheme, broker.hostname, broker.port) == ("amqp", "rabbitmq", 5672), name
        if "ROOST_DATABASE_URL" in env:
            db = urlsplit(env["ROOST_DATABASE_URL"])
            assert (db.hostname, db.port) == ("postgres", 5432), name
            assert db.path.lstrip("/") == pg_env["POSTGRES_DB"], name
            assert db.password == pg_env["POSTGRES_PASSWORD"], name
    for name in ("migrate", "api", "scheduler", "gateway", "ratelimiter"):
        assert "ROOST_DATABASE_URL" in _env(services[name]), name


def test_every_roost_service_uses_the_same_broker_and_namespace() -> None:
    envs = [_env(svc) for name, svc in _roost_services().items() if name not in HTTP_ONLY]
    assert len({(e["ROOST_BROKER_URL"], e["ROOST_NAMESPACE"]) for e in envs}) == 1


def test_the_worker_gets_its_token_from_the_shell_and_has_no_database() -> None:
    raw = _services()["worker"]["environment"]
    assert raw["ROOST_TOKEN"].startswith("${ROOST_TOKEN")
    assert "ROOST_DATABASE_URL" not in raw  # workers never touch PostgreSQL


def test_the_worker_can_be_scaled_having_no_container_name_and_no_host_ports() -> None:
    worker = _services()["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert worker.get("deploy", {}).get("replicas", 1) >= 1


def test_depends_on_names_existing_services_with_conditions_they_can_meet() -> None:
    services = _services()
    for name, svc in services.items():
        for dep, condition in _depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown service {dep!r}"
            assert dep != name
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy"
            elif condition == "service_completed_successfully":
                assert services[dep].get("restart", "no") == "no", dep
            else:
                assert condition == "service_started", condition
    assert _depends_on(services["api"]) == {
        "migrate": "service_completed_successfully",
        "rabbitmq": "service_healthy",
    }
    assert _depends_on(services["scheduler"]) == _depends_on(services["api"])
    assert _depends_on(services["gateway"]) == _depends_on(services["api"])
    assert _depends_on(services["ratelimiter"]) == _depends_on(services["api"])
    assert _depends_on(services["dashboard"]) == {
        "api": "service_healthy",
        "gateway": "service_healthy",
    }
    assert _depends_on(services["migrate"]) == {"postgres": "service_healthy"}
    assert _depends_on(services["worker"]) == {"api": "service_healthy"}


def test_postgres_and_rabbitmq_have_healthchecks_and_postgres_a_named_volume() -> None:
    doc = _compose()
    pg, mq = doc["services"]["postgres"], doc["services"]["rabbitmq"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert " ".join(mq["healthcheck"]["test"]).endswith("rabbitmq-diagnostics -q ping")
    volumes = [str(v).split(":")[0] for v in pg.get("volumes", [])]
    assert any(v in (doc.get("volumes") or {}) for v in volumes), volumes


# -- deploy/Dockerfile and .dockerignore ----------------------------------------------


def test_the_dockerfile_builds_on_python_3_11() -> None:
    # Two stages: the dashboard's npm packages, then the image itself on Python 3.11.
    bases = _args_of("FROM")
    assert len(bases) == 2
    assert re.fullmatch(r"node:\d+(-slim)? AS dashboard-assets", bases[0]), bases[0]
    assert re.fullmatch(r"python:3\.11(-slim)?", bases[1].split()[0]), bases[1]


def test_the_dockerfile_installs_the_dashboards_npm_packages_from_the_lock_file() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    assert "COPY services/dashboard/package.json services/dashboard/package-lock.json ./" in text
    assert "RUN npm ci --omit=dev" in text
    assert "COPY --from=dashboard-assets /assets/node_modules services/dashboard/node_modules" in (
        text
    )
    lock = json.loads((REPO / "services" / "dashboard" / "package-lock.json").read_text())
    served = {"node_modules/@dagrejs/dagre", "node_modules/uplot"}
    assert served <= set(lock["packages"]), "the lock file pins what the dashboard serves"


def test_the_dockerfile_entrypoint_is_roost_and_it_prints_help_by_default() -> None:
    assert [_exec_form(a) for a in _args_of("ENTRYPOINT")] == [["roost"]]
    assert [_exec_form(a) for a in _args_of("CMD")] == [["--help"]]


def test_the_dockerfile_installs_the_locked_workspace_with_uv_sync_frozen() -> None:
    steps = _dockerfile()
    copies = [i for i, (kw, args) in enumerate(steps) if kw == "COPY" and "uv.lock" in args.split()]
    syncs = [i for i, (kw, args) in enumerate(steps) if kw == "RUN" and "uv sync" in args]
    assert copies and syncs, "copy uv.lock and run uv sync"
    assert copies[0] < syncs[0]
    sync = steps[syncs[0]][1]
    for flag in ("--frozen", "--all-packages", "--no-dev"):
        assert flag in sync.split(), flag
    assert any(kw == "RUN" and "pip install" in a and "uv" in a for kw, a in steps[: syncs[0]])
    copied = {src.rstrip("/") for kw, args in steps if kw == "COPY" for src in args.split()[:-1]}
    assert {"pyproject.toml", "uv.lock", "shared", "services", "examples"} <= copied


def test_the_image_puts_the_venv_on_path_and_runs_from_app_where_examples_are() -> None:
    env = " ".join(_args_of("ENV"))
    assert "/app/.venv/bin" in env
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in env.split()
    assert _args_of("WORKDIR")[-1] == "/app"  # `roost worker` imports targets from the cwd


def test_the_image_runs_as_a_non_root_user() -> None:
    users = _args_of("USER")
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_the_dockerfile_exposes_the_api_gateway_and_dashboard_ports() -> None:
    exposed = {int(p.split("/")[0]) for args in _args_of("EXPOSE") for p in args.split()}
    assert {API_PORT_DEFAULT, GATEWAY_PORT_DEFAULT, DASHBOARD_PORT_DEFAULT} <= exposed


def test_the_dockerignore_drops_local_state_but_keeps_what_the_image_copies() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", ".git", ".roost", "**/__pycache__", "**/node_modules", "tests/"):
        assert needed in patterns, needed
    for kept in ("pyproject.toml", "uv.lock", "shared", "services", "examples", "deploy"):
        assert not any(p.strip("/") in (kept, f"{kept}/**") for p in patterns), kept
