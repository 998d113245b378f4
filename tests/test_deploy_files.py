"""deploy/'s Dockerfile, compose file, Kubernetes manifests and systemd units run real dlrhub.

Docker and Kubernetes do not run here, so the files are parsed: every dlrhub command
they run parses with dlrhub's own parser (a renamed command or flag fails here), every
`DLRHUB_*` variable they set and every dlrhub.toml they ship loads with
`load_config` (which refuses unknown keys and variables it cannot apply), and what
docs/operations.md promises of them holds (non-root, read-only root file system,
probes, secrets from a Secret, the alert rules' metrics exist).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dlrhub.cli import build_parser
from dlrhub.config import Config, ConfigError, load_config
from dlrhub.outbound.poll_metrics import PollMetrics
from dlrhub.receiver.delivery_metrics import DeliveryMetrics
from dlrhub.receiver.metrics import Metrics
from dlrhub.sinks.service import SinkMetrics
from tests.unit_sandbox import unit_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
UNITS = sorted(DEPLOY.glob("*.service"))
DATA_DIR = "/var/lib/dlrhub"


# ---- reading the files ---------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case: FROM, RUN, ...
    arguments: str

    def exec_form(self) -> list[str]:
        """`["a", "b"]` as a list; a shell form is refused (signals would miss dlrhub)."""
        parsed = json.loads(self.arguments)
        assert isinstance(parsed, list), self
        return [str(part) for part in parsed]


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """The instructions, continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        name, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(name.upper(), arguments.strip()))
        pending = ""
    assert not pending, f"{path} ends inside a continued line"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, instruction in enumerate(instructions) if instruction.name == "FROM"]
    return instructions[starts[-1] :]


def one(stage: list[Instruction], name: str) -> Instruction:
    found = [instruction for instruction in stage if instruction.name == name]
    assert len(found) == 1, f"the final stage has {len(found)} {name} instructions"
    return found[0]


def image_environment() -> dict[str, str]:
    """The final stage's ENV pairs (`ENV A=1 B=2`)."""
    environment = {}
    for instruction in final_stage(dockerfile_instructions(DOCKERFILE)):
        if instruction.name == "ENV":
            for pair in shlex.split(instruction.arguments):
                key, _, value = pair.partition("=")
                environment[key] = value
    return environment


def image_command() -> list[str]:
    """ENTRYPOINT + CMD of the image: `dlrhub` and the default command."""
    stage = final_stage(dockerfile_instructions(DOCKERFILE))
    return one(stage, "ENTRYPOINT").exec_form() + one(stage, "CMD").exec_form()


def compose_file() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def is_dlrhub_service(service: Mapping[str, Any]) -> bool:
    build = service.get("build") or {}
    return str(service.get("image", "")).startswith("dlrhub:") or (
        isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile"
    )


def dlrhub_services() -> dict[str, dict[str, Any]]:
    services = compose_file()["services"]
    return {name: service for name, service in services.items() if is_dlrhub_service(service)}


def service_command(service: Mapping[str, Any]) -> list[str]:
    """What runs in the service's container: the image's ENTRYPOINT and its command."""
    entrypoint, *default = image_command()
    command = service.get("command", default)
    assert isinstance(command, list), f"write command: as a list: {command!r}"
    return [str(service.get("entrypoint", entrypoint)), *map(str, command)]


def kustomization() -> dict[str, Any]:
    document = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def kubernetes_resources() -> list[dict[str, Any]]:
    resources = []
    for name in kustomization()["resources"]:
        text = (KUBERNETES / name).read_text(encoding="utf-8")
        resources += [document for document in yaml.safe_load_all(text) if document]
    return resources


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [resource for resource in kubernetes_resources() if resource["kind"] == kind]


def workloads() -> list[dict[str, Any]]:
    return of_kind("Deployment") + of_kind("Job")


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def dlrhub_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) of every container running the dlrhub image."""
    for workload in workloads():
        spec = pod_spec(workload)
        for container in spec["containers"]:
            if container["image"].split(":")[0] == "dlrhub":
                yield workload["metadata"]["name"], spec, container


def container_command(container: Mapping[str, Any]) -> list[str]:
    entrypoint, *default = image_command()
    return [*container.get("command", [entrypoint]), *container.get("args", default)]


def container_by_command(subcommand: str) -> dict[str, Any]:
    (found,) = [c for _, _, c in dlrhub_containers() if container_command(c)[1] == subcommand]
    return found


def unit_commands(unit: Path) -> list[list[str]]:
    settings = unit_settings(unit)
    lines = settings.get("ExecStartPre", []) + settings["ExecStart"]
    return [shlex.split(line.lstrip("-")) for line in lines]


def all_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every dlrhub command the deploy files run; argv[0] is dlrhub."""
    found = [("Dockerfile", image_command())]
    found += [(f"compose:{name}", service_command(s)) for name, s in dlrhub_services().items()]
    found += [
        (f"kubernetes:{name}", container_command(container))
        for name, _, container in dlrhub_containers()
    ]
    for unit in UNITS:
        found += [(f"systemd:{unit.name}", argv) for argv in unit_commands(unit)]
    return found


# ---- commands: real dlrhub commands --------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> set[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for action in actions for name in action.choices}


@pytest.mark.parametrize(
    ("where", "argv"), all_commands(), ids=[f"{w}:{' '.join(a[1:])}" for w, a in all_commands()]
)
def test_every_command_the_deploy_files_run_parses_with_dlrhubs_parser(
    where: str, argv: list[str]
) -> None:
    assert Path(argv[0]).name == "dlrhub", f"{where} runs {argv[0]}, not dlrhub"
    parser = build_parser()
    if argv[1] == "migrate" and "migrate" not in subcommands(parser):
        pytest.skip("'dlrhub migrate' is not in this checkout yet (issue 14); checked once it is")
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv[1:])
    except SystemExit as refused:
        pytest.fail(f"{where}: dlrhub refuses {shlex.join(argv[1:])!r}: {errors.getvalue()}")
        raise AssertionError from refused  # unreachable: pytest.fail raises


def test_each_deployment_runs_every_role() -> None:
    def roles(commands: list[list[str]]) -> list[str]:
        return sorted(" ".join(argv[1:]).split(" --metrics-port")[0] for argv in commands)

    compose = [service_command(service) for service in dlrhub_services().values()]
    assert roles(compose) == [
        "migrate",
        "poll",
        "serve --no-sinks",
        "serve --no-sinks",
        "worker",
        "worker",
    ]
    kubernetes = [container_command(container) for _, _, container in dlrhub_containers()]
    assert roles(kubernetes) == ["migrate", "poll", "serve --no-sinks", "worker"]
    systemd = [unit_commands(unit)[-1] for unit in UNITS]
    assert roles(systemd) == ["migrate", "poll", "serve", "worker"]


# ---- configuration: real keys --------------------------------------------------------


def loaded(where: str, path: Path, environment: Mapping[str, str]) -> Config:
    """`path` with `environment` applied, as dlrhub loads it; a key it does not know fails."""
    assert all(name.startswith("DLRHUB_") for name in environment), environment
    try:
        return load_config(path, env={k: v for k, v in environment.items() if k != "DLRHUB_CONFIG"})
    except ConfigError as error:
        pytest.fail(f"{where}: dlrhub refuses {path.relative_to(ROOT)} with its variables: {error}")


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines())
    return {key: value for key, value in pairs if not key.startswith("#")}


def with_stand_in_secrets(environment: Mapping[str, str]) -> dict[str, str]:
    """An example's `replace-with-...` placeholders (refused by dlrhub) as real-looking values."""
    return {
        key: secrets.token_urlsafe(24) if value.startswith("replace-with") else value
        for key, value in environment.items()
    }


def dlrhub_variables(environment: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in environment.items() if key.startswith("DLRHUB_")}


def test_the_image_sets_only_real_keys() -> None:
    config = loaded("Dockerfile ENV", DEPLOY / "dlrhub.toml.example", image_env_with_token())
    assert str(config.data_dir) == DATA_DIR
    assert config.log_format == "json"
    assert config.server.host == "0.0.0.0"


def image_env_with_token() -> dict[str, str]:
    # dlrhub.toml.example's source token is a placeholder dlrhub refuses (tests/test_docs.py)
    token = {"DLRHUB_SOURCES__NRS360__TOKEN": secrets.token_urlsafe(24)}
    return {**dlrhub_variables(image_environment()), **token}


@pytest.fixture(scope="module")
def compose_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/compose/make-secrets.sh run in a copy of deploy/compose: its secrets/ folder."""
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(DEPLOY / "compose" / "make-secrets.sh", folder)
    done = subprocess.run(
        ["sh", str(folder / "make-secrets.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return folder / "secrets"


def compose_config(name: str, service: Mapping[str, Any], secrets_folder: Path) -> Config:
    environment = dlrhub_variables(image_environment())
    env_files = service.get("env_file", [])
    for env_file in [env_files] if isinstance(env_files, str) else env_files:
        assert env_file.startswith("secrets/"), env_file
        made = secrets_folder / Path(env_file).relative_to("secrets")
        environment |= with_stand_in_secrets(read_env_file(made))
    environment |= {k: str(v) for k, v in service.get("environment", {}).items()}
    mounts = dict(reversed(volume.split(":")[:2]) for volume in service["volumes"])
    config_file = DEPLOY / "compose" / mounts[environment["DLRHUB_CONFIG"]]
    return loaded(f"compose:{name}", config_file, environment)


def test_compose_sets_only_real_keys(compose_secrets: Path) -> None:
    for name, service in dlrhub_services().items():
        config = compose_config(name, service, compose_secrets)
        assert config.store.backend == "postgres", name
        assert config.log_format == "json", name
        assert any(v.endswith(f":{config.data_dir}") for v in service["volumes"]), name
        assert parse_seconds(service["stop_grace_period"]) > config.shutdown_timeout, name


def test_compose_secrets_are_private_and_agree(compose_secrets: Path) -> None:
    password = (compose_secrets / "postgres_password").read_text(encoding="utf-8")
    dsn = read_env_file(compose_secrets / "dlrhub.env")["DLRHUB_STORE__DSN"]
    assert f":{password}@postgres:5432/" in dsn
    for made in compose_secrets.iterdir():
        assert made.stat().st_mode & 0o777 == 0o600, made
    assert "secrets/" in (DEPLOY / "compose" / ".gitignore").read_text(encoding="utf-8")


def kubernetes_config_file() -> Path:
    (generator,) = kustomization()["configMapGenerator"]
    (file,) = generator["files"]
    return KUBERNETES / str(file)


def kubernetes_secret() -> tuple[str, dict[str, str]]:
    """The Secret's name and its keys with the example's values (secrets.env.example)."""
    (generator,) = kustomization()["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]
    gitignore = (KUBERNETES / ".gitignore").read_text(encoding="utf-8")
    assert "secrets.env" in gitignore.splitlines()
    example = read_env_file(KUBERNETES / "secrets.env.example")
    return str(generator["name"]), with_stand_in_secrets(example)


def test_kubernetes_sets_only_real_keys_and_takes_secrets_from_the_secret() -> None:
    secret_name, secret = kubernetes_secret()
    for name, spec, container in dlrhub_containers():
        environment = dlrhub_variables(image_environment())
        for source in container.get("envFrom", []):
            assert source["secretRef"]["name"] == secret_name, name
            environment |= secret
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference is None:  # a secret is never written in a manifest
                assert variable["name"] == "DLRHUB_CONFIG", f"{name}: a literal {variable}"
                environment[variable["name"]] = variable["value"]
            else:
                assert reference["name"] == secret_name, name
                assert reference["key"] in secret, f"{name}: {reference} not in the Secret"
                environment[variable["name"]] = secret[reference["key"]]
        assert "DLRHUB_STORE__DSN" in environment, name
        mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        (config_volume,) = [v for v in volumes.values() if "configMap" in v]
        mounted_at = mounts[config_volume["name"]]["mountPath"]
        assert Path(environment["DLRHUB_CONFIG"]).parent == Path(mounted_at), name
        config = loaded(f"kubernetes:{name}", kubernetes_config_file(), environment)
        assert config.store.backend == "postgres"
        assert config.log_format == "json"
        assert spec["terminationGracePeriodSeconds"] > config.shutdown_timeout, name
        writable = {m["mountPath"] for m in mounts.values() if not m.get("readOnly")}
        assert {str(config.data_dir), "/tmp"} <= writable, name


def test_systemd_units_set_only_real_keys() -> None:
    for unit in UNITS:
        settings = unit_settings(unit)
        environment = dict(line.split("=", 1) for line in settings["Environment"])
        assert environment["DLRHUB_CONFIG"] == "/etc/dlrhub/dlrhub.toml"  # deploy/README.md
        environment["DLRHUB_SOURCES__NRS360__TOKEN"] = secrets.token_urlsafe(24)  # secrets.env
        config = loaded(unit.name, DEPLOY / "dlrhub.toml.example", environment)
        if "TimeoutStopSec" in settings:
            assert parse_seconds(settings["TimeoutStopSec"][0]) > config.shutdown_timeout


def parse_seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)?", str(text))
    assert match, text
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


# ---- the image -----------------------------------------------------------------------


def test_the_image_is_slim_multi_stage_non_root_and_checks_healthz() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    arguments = {
        key: value
        for instruction in instructions
        if instruction.name == "ARG"
        for key, _, value in [instruction.arguments.partition("=")]
    }
    bases = [i.arguments.split()[0] for i in instructions if i.name == "FROM"]
    assert len(bases) == 2 and bases[1] == "${PYTHON_IMAGE}"
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", arguments["PYTHON_IMAGE"])
    stage = final_stage(instructions)
    user = one(stage, "USER").arguments.split(":")[0]
    assert user not in ("root", "0") and user.isdigit()  # numeric: runAsNonRoot can check it
    healthcheck = one(stage, "HEALTHCHECK").arguments
    environment = image_environment()
    assert f":{environment['DLRHUB_SERVER__PORT']}/healthz'" in healthcheck
    assert "curl" not in healthcheck  # not in the slim image
    assert "8080" in one(stage, "EXPOSE").arguments.split()
    assert json.loads(one(stage, "VOLUME").arguments) == [DATA_DIR]
    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"
    assert environment["DLRHUB_DATA_DIR"] == DATA_DIR
    assert image_command()[0] == "dlrhub"
    # what the build copies is in the build context .dockerignore leaves
    kept = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    copied = {
        source.rstrip("/")
        for instruction in instructions
        if instruction.name == "COPY" and "--from" not in instruction.arguments
        for source in instruction.arguments.split()[:-1]
    }
    assert copied <= kept


# ---- compose -------------------------------------------------------------------------


def test_compose_is_read_only_healthchecked_and_migrates_first() -> None:
    services = compose_file()["services"]
    for name, service in services.items():
        assert service.get("read_only") is True, name
        assert "healthcheck" in service or name == "postgres", name
    for name, service in dlrhub_services().items():
        assert service["cap_drop"] == ["ALL"], name
        if service_command(service)[1] == "migrate":
            assert service["restart"] == "no"
            assert services["postgres"]["healthcheck"]["test"]
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        else:
            condition = service["depends_on"]["migrate"]["condition"]
            assert condition == "service_completed_successfully", name
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")


def test_compose_terminates_tls_in_front_of_both_receivers(compose_secrets: Path) -> None:
    services = compose_file()["services"]
    receivers = [
        name
        for name, service in dlrhub_services().items()
        if service_command(service)[1] == "serve"
    ]
    proxy = services["proxy"]
    assert proxy["image"].startswith("caddy:")
    assert any(port.endswith(":443") for port in proxy["ports"])
    mounts = dict(reversed(volume.split(":")[:2]) for volume in proxy["volumes"])
    caddyfile = (DEPLOY / "compose" / mounts["/etc/caddy/Caddyfile"]).read_text(encoding="utf-8")
    assert re.search(r"^\s*tls internal$", caddyfile, re.MULTILINE)
    upstreams = re.search(r"^\s*reverse_proxy ([^{]+)\{", caddyfile, re.MULTILINE)
    assert upstreams and sorted(upstreams.group(1).split()) == [f"{r}:8080" for r in receivers]
    assert not any("ports" in services[name] for name in receivers)  # only through the proxy
    config = compose_config(receivers[0], services[receivers[0]], compose_secrets)
    proxy_address = proxy["networks"]["dlrhub"]["ipv4_address"]
    assert config.server.forwarded_allow_ips == proxy_address
    (sink,) = config.sinks
    assert sink.kind == "redis" and "redis" in services


# ---- Kubernetes ----------------------------------------------------------------------


def test_kubernetes_pods_are_non_root_read_only_without_capabilities() -> None:
    for name, spec, container in dlrhub_containers():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert set(resources[bound]) == {"cpu", "memory"}, (name, bound)


def test_kubernetes_receivers_have_probes_a_service_and_a_disruption_budget() -> None:
    receiver = container_by_command("serve")
    port = {p["name"]: p["containerPort"] for p in receiver["ports"]}
    assert port == {"http": 8080}
    assert receiver["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert receiver["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    (deployment,) = [
        d
        for d in of_kind("Deployment")
        if container_command(pod_spec(d)["containers"][0])[1] == "serve"
    ]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    (service,) = of_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    budgets = [b["spec"]["selector"]["matchLabels"] for b in of_kind("PodDisruptionBudget")]
    assert any(selector.items() <= labels.items() for selector in budgets)
    worker = container_by_command("worker")
    metrics_port = container_command(worker)[container_command(worker).index("--metrics-port") + 1]
    assert worker["livenessProbe"]["httpGet"]["port"] in ("metrics", int(metrics_port))
    (job,) = of_kind("Job")
    assert container_command(pod_spec(job)["containers"][0])[1:] == ["migrate"]


# ---- Prometheus alert rules ----------------------------------------------------------


def exported_metric_names() -> set[str]:
    """Every series name dlrhub's collectors export, counters with `_total` as scraped."""
    registry = Metrics().registry
    registry.register(SinkMetrics(list))
    PollMetrics().register(registry)
    registry.register(DeliveryMetrics(store=None))  # type: ignore[arg-type]  # collects only
    return {name for family in registry.collect() for name in series_names(family)}


def series_names(family: Any) -> set[str]:
    names = {sample.name for sample in family.samples}
    if family.type == "counter":
        names.add(f"{family.name}_total")
    elif family.type == "histogram":  # its name as the docs say it, and its series
        names |= {family.name, *(f"{family.name}_{end}" for end in ("bucket", "sum", "count"))}
    else:
        names.add(family.name)
    return names


METRIC = re.compile(r"\bdlrhub_[a-z_]*[a-z](?![\w*])")  # not a prefix such as dlrhub_poller_*


def test_the_alert_rules_use_only_metrics_dlrhub_exports() -> None:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    used = {name for rule in rules for name in METRIC.findall(rule["expr"])}
    exported = exported_metric_names()
    assert used - exported == set(), f"not exported by dlrhub (it has {sorted(exported)})"
    # what docs/operations.md says to alert on is there
    assert {
        "dlrhub_callbacks_total",
        "dlrhub_sink_lag_seconds",
        "dlrhub_sink_dead_lettered_total",
        "dlrhub_poller_account_paused",
    } <= used
    for rule in rules:
        assert rule["alert"] and rule["labels"]["severity"], rule


def test_the_operations_guide_names_only_metrics_dlrhub_exports() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert set(METRIC.findall(guide)) - exported_metric_names() == set()
    # its example rules are alerts.yaml's, as they are there
    shipped = {
        rule["alert"]: rule
        for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    }
    blocks = re.findall(r"```yaml\n(.*?)```", guide, re.DOTALL)
    examples = [
        rule
        for block in blocks
        for group in yaml.safe_load(block)["groups"]
        for rule in group["rules"]
    ]
    assert examples
    for rule in examples:
        assert rule["expr"] == shipped[rule["alert"]]["expr"], rule["alert"]
