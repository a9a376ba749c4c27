"""deploy/k8s/ (plain manifests and a KEDA ScaledObject) agrees with the code.

There may be no cluster to apply them to, so they are checked by parsing: each
container's args against the real ``roost`` CLI, each ROOST_* variable (literal, from the
ConfigMap or from the Secret) against the settings classes the process builds, ports and
probes against the settings' defaults, Services against the pods they select, and the
ScaledObject's queues against the workflows the worker really serves."""

from __future__ import annotations

import base64
import importlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from pydantic_settings import BaseSettings

from roost import Worker
from roost._settings import ClientSettings
from roost_api.settings import ApiSettings
from roost_core.settings import CoreSettings
from roost_core.topology import Topology
from roost_dashboard.settings import DashboardSettings
from roost_gateway.settings import GatewaySettings
from roost_ratelimiter.settings import RatelimiterSettings
from roost_scheduler.settings import SchedulerSettings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
NAMESPACE = "roost"

# The settings classes each `roost` command builds from its environment.
SETTINGS_OF: dict[str, tuple[type[BaseSettings], ...]] = {
    "api": (ApiSettings,),
    "scheduler": (SchedulerSettings,),
    "ratelimiter": (RatelimiterSettings,),
    "gateway": (GatewaySettings,),
    "dashboard": (DashboardSettings,),
    "migrate": (CoreSettings,),
    "worker": (CoreSettings, ClientSettings),
}
API_PORT = ApiSettings.model_fields["api_port"].default
GATEWAY_PORT = GatewaySettings.model_fields["gateway_port"].default
DASHBOARD_PORT = DashboardSettings.model_fields["dashboard_port"].default
SCHEDULER_METRICS_PORT = SchedulerSettings.model_fields["scheduler_metrics_port"].default
RATELIMITER_METRICS_PORT = RatelimiterSettings.model_fields["ratelimiter_metrics_port"].default
# The port each process listens on (its settings' default).
LISTENS_ON = {
    "api": API_PORT,
    "gateway": GATEWAY_PORT,
    "dashboard": DASHBOARD_PORT,
    "scheduler": SCHEDULER_METRICS_PORT,
    "ratelimiter": RATELIMITER_METRICS_PORT,
}
# Processes that talk to the api and the gateway over HTTP only: no broker, no database.
HTTP_ONLY = {"dashboard"}


# -- reading the manifests ------------------------------------------------------------


def _kustomization() -> dict[str, Any]:
    doc = yaml.safe_load(KUSTOMIZATION.read_text())
    assert isinstance(doc, dict) and doc.get("kind") == "Kustomization", KUSTOMIZATION
    return doc


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.y*ml") if p.name != KUSTOMIZATION.name)


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
            docs.append(doc)
    return docs


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _documents() if d.get("kind") == kind}


def _one(kind: str, name: str) -> dict[str, Any]:
    found = _of_kind(kind)
    assert name in found, f"no {kind} {name!r} in deploy/k8s; there are {sorted(found)}"
    return found[name]


def _secret_values(secret: dict[str, Any]) -> dict[str, str]:
    values = {k: str(v) for k, v in (secret.get("stringData") or {}).items()}
    for k, v in (secret.get("data") or {}).items():
        values.setdefault(k, base64.b64decode(v).decode())
    return values


@dataclass(frozen=True)
class Process:
    """One Roost container: the workload that runs it, its pod spec and the container."""

    workload: dict[str, Any]
    pod: dict[str, Any]
    container: dict[str, Any]

    @property
    def template(self) -> dict[str, Any]:
        template: dict[str, Any] = self.workload["spec"]["template"]
        return template


def _workloads() -> list[dict[str, Any]]:
    return [d for d in _documents() if d.get("kind") in ("Deployment", "Job")]


def _ports(container: dict[str, Any]) -> dict[str, int]:
    """containerPort by name (unnamed ports by their number)."""
    return {
        str(p.get("name", p["containerPort"])): int(p["containerPort"])
        for p in container.get("ports") or []
    }


def _resolve_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    ports = _ports(container)
    assert port in ports, f"{container['name']}: no container port named {port!r}"
    return ports[port]


@dataclass(frozen=True)
class EnvVar:
    value: str
    source: str  # "literal", "configmap/<name>" or "secret/<name>"
    key: str | None = None  # the ConfigMap's or Secret's key


def _env(container: dict[str, Any]) -> dict[str, EnvVar]:
    """The environment the container starts with, each value resolved in the manifests."""
    config_maps = _of_kind("ConfigMap")
    secrets = _of_kind("Secret")

    def from_config_map(name: str, key: str | None = None) -> dict[str, EnvVar]:
        assert name in config_maps, f"{container['name']}: no ConfigMap {name!r}"
        data = config_maps[name].get("data") or {}
        return {k: EnvVar(v, f"configmap/{name}", k) for k, v in data.items() if key in (None, k)}

    def from_secret(name: str, key: str | None = None) -> dict[str, EnvVar]:
        assert name in secrets, f"{container['name']}: no Secret {name!r}"
        data = _secret_values(secrets[name])
        return {k: EnvVar(v, f"secret/{name}", k) for k, v in data.items() if key in (None, k)}

    env: dict[str, EnvVar] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            found = from_config_map(source["configMapRef"]["name"])
        else:
            found = from_secret(source["secretRef"]["name"])
        env.update({prefix + k: v for k, v in found.items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            assert isinstance(item["value"], str), f"{name}: env values must be strings"
            env[name] = EnvVar(item["value"], "literal")
            continue
        ref = item["valueFrom"]
        if "configMapKeyRef" in ref:
            found = from_config_map(ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"])
        else:
            found = from_secret(ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])
        assert len(found) == 1, f"{container['name']}: {name} refers to a key that is missing"
        env[name] = next(iter(found.values()))
    return env


def _settings_env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    assert not cls.model_config.get("case_sensitive"), "names below assume case-insensitive"
    return {f"{prefix}{name}".upper() for name in cls.model_fields}


def _is_group(command: Any) -> bool:
    # Typer may vendor its own click, so test for a group's shape, not click.Group.
    return isinstance(getattr(command, "commands", None), dict)


@pytest.fixture(scope="module")
def cli() -> Iterator[Any]:
    """The real ``roost`` CLI as click sees it. Importing roost.cli makes ``cli`` an
    attribute of the roost package (public surface for test_exported_members.py): undone
    afterwards."""
    import roost

    had_module, had_attribute = "roost.cli" in sys.modules, hasattr(roost, "cli")
    from roost.cli import app

    yield typer.main.get_command(app)
    if not had_attribute and hasattr(roost, "cli"):
        delattr(roost, "cli")
    if not had_module:
        sys.modules.pop("roost.cli", None)


def _parse_cli(cli: Any, argv: list[str]) -> Any:
    """Resolve ``roost ARGV`` through the real Typer app and parse it without running it
    (a usage error raises); the click context."""
    command, path, rest = cli, ["roost"], list(argv)
    while _is_group(command):
        assert rest, f"`{' '.join(path)}` needs a sub-command"
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`{' '.join(path)} {name}` is not a roost command"
        command, path = sub, [*path, name]
    return command.make_context(" ".join(path), rest)


@pytest.fixture(scope="module")
def processes(cli: Any) -> dict[str, Process]:
    """Every Roost container by the `roost` command it runs (api, worker, ...)."""
    found: dict[str, Process] = {}
    for workload in _workloads():
        pod = workload["spec"]["template"]["spec"]
        for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
            args = container.get("args")
            assert "command" not in container, f"{container['name']}: keep the ENTRYPOINT"
            assert isinstance(args, list) and args, f"{container['name']}: give args as a list"
            ctx = _parse_cli(cli, [str(a) for a in args])
            name = ctx.info_name.removeprefix("roost ")
            assert name not in found, f"two containers run `roost {name}`"
            found[name] = Process(workload, pod, container)
    return found


@pytest.fixture(scope="module")
def served_workflows(cli: Any, processes: dict[str, Process]) -> list[str]:
    """Names of the workflows the worker Deployment's target serves, from importing it
    (the image runs from /app, the repository's root: the target is imported from there)."""
    target = _parse_cli(cli, processes["worker"].container["args"]).params["target"]
    module_name, _, attr = target.partition(":")
    top = module_name.split(".")[0]
    loaded_before = set(sys.modules)
    added = str(REPO) not in sys.path
    if added:
        sys.path.insert(0, str(REPO))
    try:
        module = importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(str(REPO))
    worker = getattr(module, attr, None)
    for name in set(sys.modules) - loaded_before:
        if name == top or name.startswith(f"{top}."):
            del sys.modules[name]
    assert isinstance(worker, Worker), f"{target} is not a roost Worker"
    return sorted(worker.workflows)


def _dockerfile_user() -> tuple[int, int | None]:
    users = [
        line.split(None, 1)[1].strip()
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip().upper().startswith("USER ")
    ]
    assert users, "the Dockerfile sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), f"USER {users[-1]}: use a numeric uid so runAsNonRoot can verify it"
    return int(uid), int(gid) if gid.isdigit() else None


_QUANTITY_UNITS = {
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
}


def _quantity(value: Any) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(value))
    assert match and match.group(2) in _QUANTITY_UNITS, f"not a quantity: {value!r}"
    return float(match.group(1)) * _QUANTITY_UNITS[match.group(2)]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# -- the files ------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_file_and_only_existing_ones() -> None:
    resources = _kustomization()["resources"]
    assert len(resources) == len(set(resources)), "a file is listed twice"
    for name in resources:
        assert (K8S / name).is_file(), f"kustomization.yaml lists {name}, which does not exist"
    assert set(resources) == {p.name for p in _manifest_files()}


def test_every_object_is_named_once_and_lives_in_the_roost_namespace() -> None:
    docs = _documents()
    assert _one("Namespace", NAMESPACE)
    keys = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), "two objects share a kind and a name"
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), doc.get("metadata")
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, keys


def test_labels_annotations_and_config_values_are_strings_as_kubernetes_requires() -> None:
    for doc in _documents():
        templates = [doc["metadata"]]
        if doc["kind"] in ("Deployment", "Job"):
            templates.append(doc["spec"]["template"]["metadata"])
        for meta in templates:
            for field in ("labels", "annotations"):
                for key, value in (meta.get(field) or {}).items():
                    assert isinstance(value, str), f"{doc['metadata']['name']}: {key}={value!r}"
        if doc["kind"] == "ConfigMap":
            assert all(isinstance(v, str) for v in doc["data"].values()), doc["data"]
        if doc["kind"] == "Secret":
            assert all(isinstance(v, str) for v in doc.get("stringData", {}).values())


def test_the_secret_holds_placeholders_an_operator_is_told_to_replace() -> None:
    secret = _one("Secret", "roost-secrets")
    assert set(secret["stringData"]) == {"ROOST_DATABASE_URL", "ROOST_BROKER_URL", "ROOST_TOKEN"}
    text = (K8S / "config.yaml").read_text().lower()
    assert "placeholder" in text and "replace" in text


def test_the_config_map_holds_the_namespace_and_the_sdk_settings() -> None:
    data = _one("ConfigMap", "roost-config")["data"]
    assert data == {
        "ROOST_NAMESPACE": NAMESPACE,
        "ROOST_TLS_STRATEGY": "none",
        "ROOST_API_URL": f"http://roost-api:{API_PORT}",
        "ROOST_GATEWAY_URL": f"http://roost-gateway:{GATEWAY_PORT}",
    }


def test_the_documented_apply_order_selects_config_first_then_the_migrate_job() -> None:
    """docs/deploy.md applies `-l '!app.kubernetes.io/component'` (what the Job needs),
    then `-l app.kubernetes.io/component=migrate`, then everything."""
    component = "app.kubernetes.io/component"
    unlabelled, migrate = set(), set()
    for doc in _documents():
        labels = doc["metadata"].get("labels") or {}
        key = (doc["kind"], doc["metadata"]["name"])
        if component not in labels:
            unlabelled.add(key)
        elif labels[component] == "migrate":
            migrate.add(key)
    assert unlabelled == {
        ("Namespace", NAMESPACE),
        ("ConfigMap", "roost-config"),
        ("Secret", "roost-secrets"),
        ("TriggerAuthentication", "roost-rabbitmq"),
    }
    assert migrate == {("Job", "roost-migrate")}
    docs = (REPO / "docs" / "deploy.md").read_text()
    assert f"-l '!{component}'" in docs and f"-l {component}=migrate" in docs


# -- workloads and the CLI ------------------------------------------------------------


def test_each_roost_process_runs_once_migrate_as_a_job_the_rest_as_deployments(
    processes: dict[str, Process],
) -> None:
    assert set(processes) == set(SETTINGS_OF)
    for name, proc in processes.items():
        expected = "Job" if name == "migrate" else "Deployment"
        assert proc.workload["kind"] == expected, name
    job_pod = processes["migrate"].pod
    assert job_pod["restartPolicy"] in ("OnFailure", "Never")
    replicas = {n: p.workload["spec"].get("replicas") for n, p in processes.items()}
    assert replicas == {
        "migrate": None,
        "api": 2,
        "scheduler": 2,
        "ratelimiter": 1,
        "gateway": 2,
        "dashboard": 2,
        "worker": None,  # KEDA owns it: a fixed count would be reset on every apply
    }


def test_the_worker_runs_examples_beads_worker_as_2_processes_of_8_threads(
    cli: Any, processes: dict[str, Process]
) -> None:
    ctx = _parse_cli(cli, processes["worker"].container["args"])
    assert ctx.params == {
        "target": "examples.beads:worker",
        "processes": 2,
        "threads": 8,
        "shutdown_grace": 30.0,
    }


def test_a_stopping_worker_pod_has_longer_than_the_shutdown_grace_to_finish(
    cli: Any, processes: dict[str, Process]
) -> None:
    grace = _parse_cli(cli, processes["worker"].container["args"]).params["shutdown_grace"]
    assert processes["worker"].pod.get("terminationGracePeriodSeconds", 30) > grace


def test_every_container_runs_the_roost_image_with_requests_within_limits(
    processes: dict[str, Process],
) -> None:
    for name, proc in processes.items():
        container = proc.container
        assert container["image"] == "roost:latest", name
        resources = container["resources"]
        for kind in ("cpu", "memory"):
            request = _quantity(resources["requests"][kind])
            limit = _quantity(resources["limits"][kind])
            assert 0 < request <= limit, f"{name}: {kind} request {request} > limit {limit}"


def test_every_deployment_selects_its_own_pods_and_no_other_workloads() -> None:
    workloads = _workloads()
    for deployment in _of_kind("Deployment").values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector, deployment["metadata"]["name"]
        assert _selects(selector, deployment["spec"]["template"]["metadata"]["labels"])
        others = [
            w["metadata"]["name"]
            for w in workloads
            if (w["kind"], w["metadata"]["name"]) != ("Deployment", deployment["metadata"]["name"])
            and _selects(selector, w["spec"]["template"]["metadata"]["labels"])
        ]
        assert not others, f"{deployment['metadata']['name']} would also adopt {others}"


# -- Services, ports and probes -------------------------------------------------------


def test_every_service_selects_one_deployment_and_targets_a_port_its_pods_open() -> None:
    services = _of_kind("Service")
    assert set(services) == {"roost-api", "roost-gateway", "roost-dashboard"}
    deployments = _of_kind("Deployment").values()
    for name, service in services.items():
        selector = service["spec"]["selector"]
        chosen = [
            d
            for d in deployments
            if _selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(chosen) == 1, f"Service {name} selects {len(chosen)} Deployments"
        containers = chosen[0]["spec"]["template"]["spec"]["containers"]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            opened = [
                c
                for c in containers
                if target in (_ports(c) if isinstance(target, str) else _ports(c).values())
            ]
            assert opened, f"Service {name}: no pod container opens targetPort {target!r}"


def test_the_api_gateway_and_dashboard_services_expose_their_settings_default_ports(
    processes: dict[str, Process],
) -> None:
    for service_name, process, port in (
        ("roost-api", "api", API_PORT),
        ("roost-gateway", "gateway", GATEWAY_PORT),
        ("roost-dashboard", "dashboard", DASHBOARD_PORT),
    ):
        (entry,) = _one("Service", service_name)["spec"]["ports"]
        assert entry["port"] == port
        container = processes[process].container
        assert _resolve_port(container, entry.get("targetPort", entry["port"])) == port


def test_container_ports_are_the_ports_the_settings_listen_on(
    processes: dict[str, Process],
) -> None:
    assert (API_PORT, GATEWAY_PORT, DASHBOARD_PORT) == (7077, 7078, 8080)
    assert (SCHEDULER_METRICS_PORT, RATELIMITER_METRICS_PORT) == (9464, 9465)
    for name, proc in processes.items():
        opened = set(_ports(proc.container).values())
        assert opened == ({LISTENS_ON[name]} if name in LISTENS_ON else set()), name
    assert set(_ports(processes["scheduler"].container)) == {"metrics"}
    assert set(_ports(processes["ratelimiter"].container)) == {"metrics"}


def test_the_api_gateway_and_dashboard_listen_on_every_interface_on_their_default_port(
    processes: dict[str, Process],
) -> None:
    for name, prefix, port in (
        ("api", "ROOST_API", API_PORT),
        ("gateway", "ROOST_GATEWAY", GATEWAY_PORT),
        ("dashboard", "ROOST_DASHBOARD", DASHBOARD_PORT),
    ):
        env = _env(processes[name].container)
        assert env[f"{prefix}_HOST"].value == "0.0.0.0", "the default 127.0.0.1 is unreachable"
        assert int(env[f"{prefix}_PORT"].value) == port


def test_the_api_and_gateway_are_probed_for_readiness_and_liveness_on_their_port(
    processes: dict[str, Process],
) -> None:
    for name in ("api", "gateway"):
        container = processes[name].container
        for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert _resolve_port(container, get["port"]) == LISTENS_ON[name], f"{name} {probe}"


def test_the_dashboard_is_probed_for_readiness_and_liveness_on_health(
    processes: dict[str, Process],
) -> None:
    container = processes["dashboard"].container
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health", f"dashboard {probe}: it has no /ready"
        assert _resolve_port(container, get["port"]) == DASHBOARD_PORT, f"dashboard {probe}"


def test_prometheus_scrapes_each_service_on_the_port_it_serves_metrics_on(
    processes: dict[str, Process],
) -> None:
    for name in ("api", "gateway", "scheduler", "ratelimiter"):
        annotations = processes[name].template["metadata"].get("annotations") or {}
        assert annotations.get("prometheus.io/scrape") == "true", name
        assert annotations.get("prometheus.io/path") == "/metrics", name
        port = int(annotations["prometheus.io/port"])
        assert port == LISTENS_ON[name], name
        assert port in _ports(processes[name].container).values(), name


# -- the environment ------------------------------------------------------------------


def test_every_roost_variable_is_a_settings_field_of_the_process_it_is_given_to(
    processes: dict[str, Process],
) -> None:
    for name, proc in processes.items():
        known = set().union(*(_settings_env_names(cls) for cls in SETTINGS_OF[name]))
        given = {key for key in _env(proc.container) if key.startswith("ROOST_")}
        assert given, f"{name} gets no ROOST_* variable"
        assert given <= known, f"{name}: {sorted(given - known)} are read by none of " + ", ".join(
            cls.__name__ for cls in SETTINGS_OF[name]
        )


def test_each_process_environment_is_accepted_by_its_settings_classes(
    processes: dict[str, Process], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, proc in processes.items():
        env = _env(proc.container)
        for cls in SETTINGS_OF[name]:
            with monkeypatch.context() as m:
                for key in _settings_env_names(cls):
                    m.delenv(key, raising=False)
                for key, var in env.items():
                    m.setenv(key, var.value)
                cls()  # raises a ValidationError on a bad value


def test_the_database_url_comes_from_the_secret_and_only_where_postgresql_is_used(
    processes: dict[str, Process],
) -> None:
    for name, proc in processes.items():
        env = _env(proc.container)
        if name == "worker" or name in HTTP_ONLY:
            assert "ROOST_DATABASE_URL" not in env, f"{name} never touches PostgreSQL"
            continue
        assert env["ROOST_DATABASE_URL"].source == "secret/roost-secrets", name
        assert urlsplit(env["ROOST_DATABASE_URL"].value).scheme.startswith("postgres"), name


def test_every_process_on_the_broker_shares_its_url_and_namespace(
    processes: dict[str, Process],
) -> None:
    on_broker = {
        n: _env(p.container) for n, p in processes.items() if n != "migrate" and n not in HTTP_ONLY
    }
    for name in HTTP_ONLY:
        env = _env(processes[name].container)
        assert "ROOST_BROKER_URL" not in env, f"{name} talks to the api and gateway only"
    for name, env in on_broker.items():
        assert env["ROOST_BROKER_URL"].source == "secret/roost-secrets", name
        assert env["ROOST_NAMESPACE"].source == "configmap/roost-config", name
    assert len({(e["ROOST_BROKER_URL"], e["ROOST_NAMESPACE"]) for e in on_broker.values()}) == 1


def test_the_worker_reaches_the_api_and_gateway_through_their_services(
    processes: dict[str, Process], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(processes["worker"].container)
    assert env["ROOST_TOKEN"].source == "secret/roost-secrets"
    with monkeypatch.context() as m:
        for key in _settings_env_names(ClientSettings):
            m.delenv(key, raising=False)
        for key, var in env.items():
            m.setenv(key, var.value)
        settings = ClientSettings()
        api_url = settings.base_url()  # also checks the URL against ROOST_TLS_STRATEGY
    services = _of_kind("Service")
    for url, process in ((api_url, "api"), (settings.gateway_url, "gateway")):
        parts = urlsplit(url)
        assert parts.hostname in services, f"{url}: no Service {parts.hostname!r}"
        (entry,) = services[parts.hostname]["spec"]["ports"]
        assert parts.port == entry["port"] == LISTENS_ON[process], url
        selector = services[parts.hostname]["spec"]["selector"]
        assert _selects(selector, processes[process].template["metadata"]["labels"]), url


def test_the_dashboard_reaches_the_api_through_its_service_and_the_gateway_as_browsers_do(
    processes: dict[str, Process], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(processes["dashboard"].container)
    assert env["ROOST_API_URL"].source == "configmap/roost-config"
    with monkeypatch.context() as m:
        for key in _settings_env_names(DashboardSettings):
            m.delenv(key, raising=False)
        for key, var in env.items():
            m.setenv(key, var.value)
        settings = DashboardSettings()
    services = _of_kind("Service")
    api = urlsplit(settings.api_url)
    assert api.hostname in services, f"{settings.api_url}: no Service {api.hostname!r}"
    (entry,) = services[api.hostname]["spec"]["ports"]
    assert api.port == entry["port"] == API_PORT
    selector = services[api.hostname]["spec"]["selector"]
    assert _selects(selector, processes["api"].template["metadata"]["labels"])
    # Browsers open the event streams themselves: no in-cluster Service name, but the
    # gateway's port (as `kubectl port-forward svc/roost-gateway` publishes it).
    gateway = urlsplit(settings.gateway_url)
    assert gateway.hostname not in services, "a browser cannot resolve a Service name"
    assert gateway.port == GATEWAY_PORT


# -- KEDA -----------------------------------------------------------------------------


def test_keda_scales_the_worker_deployment_between_1_and_20_pods(
    processes: dict[str, Process],
) -> None:
    scaled = _one("ScaledObject", "roost-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] == processes["worker"].workload["metadata"]["name"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 20)


def test_keda_watches_the_task_queue_of_every_workflow_the_worker_serves(
    processes: dict[str, Process], served_workflows: list[str]
) -> None:
    assert served_workflows == ["task-execution"]
    namespace = _env(processes["worker"].container)["ROOST_NAMESPACE"].value
    expected = {Topology(namespace).task_queue(wf) for wf in served_workflows}
    assert expected == {"roost.work.task-execution"}
    triggers = _one("ScaledObject", "roost-worker")["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"rabbitmq"}
    queues = [t["metadata"]["queueName"] for t in triggers]
    assert len(queues) == len(set(queues)), "a queue is watched twice"
    assert set(queues) == expected


def test_each_rabbitmq_trigger_counts_queue_length_with_the_workers_broker_url(
    processes: dict[str, Process],
) -> None:
    broker = _env(processes["worker"].container)["ROOST_BROKER_URL"]
    auths = _of_kind("TriggerAuthentication")
    for trigger in _one("ScaledObject", "roost-worker")["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert all(isinstance(v, str) for v in meta.values()), "KEDA metadata values are strings"
        assert (meta["mode"], meta["value"], meta["protocol"]) == ("QueueLength", "20", "amqp")
        assert "host" not in meta, "the broker URL holds a password: keep it in the Secret"
        auth = auths[trigger["authenticationRef"]["name"]]
        assert auth["metadata"]["name"] == "roost-rabbitmq"
        refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
        assert set(refs) == {"host"}
        assert (f"secret/{refs['host']['name']}", refs["host"]["key"]) == (
            broker.source,
            broker.key,
        )
        assert urlsplit(broker.value).scheme == "amqp"


# -- security -------------------------------------------------------------------------


def test_every_container_runs_as_the_dockerfiles_non_root_user(
    processes: dict[str, Process],
) -> None:
    uid, gid = _dockerfile_user()
    assert uid == 10001
    for name, proc in processes.items():
        context = {**(proc.pod.get("securityContext") or {}), **proc.container["securityContext"]}
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] == uid, name
        if gid is not None and "runAsGroup" in context:
            assert context["runAsGroup"] == gid, name
        assert context.get("allowPrivilegeEscalation") is False, name


def test_a_read_only_root_filesystem_leaves_tmp_writable(processes: dict[str, Process]) -> None:
    for name, proc in processes.items():
        if not proc.container["securityContext"].get("readOnlyRootFilesystem"):
            continue
        mounts = {m["mountPath"]: m["name"] for m in proc.container.get("volumeMounts") or []}
        assert "/tmp" in mounts, f"{name}: Python's tempfile needs a writable /tmp"
        volumes = {v["name"]: v for v in proc.pod.get("volumes") or []}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
