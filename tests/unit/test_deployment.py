"""The deployment files: ``compose.yaml`` is a valid Compose file (the Compose Specification's
own schema, and ``docker compose config`` where it is installed), every service runs a real
``flowledger`` command, every worker kind runs as a service, the image carries what those
commands need, and the alerting rules read metrics that exist."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flowledger.cli.main import build_parser
from flowledger.eventlog import lag
from flowledger.eventlog.lag import FollowerLag, LagCollector, Lags
from flowledger.observability.connections import ConnectionsCollector
from flowledger.runtime import connections
from flowledger.runtime.connections import ConnectionUsage
from flowledger.runtime.settings import Settings
from flowledger.runtime.workers import WORKERS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parents[1] / "support" / "compose-spec.json"
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\})")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution (``${VAR}``, ``${VAR:-default}``, ``$$``)."""
    if isinstance(value, str):
        return _VARIABLE.sub(
            lambda m: "$" if m[0] == "$$" else env.get(m["name"]) or m["default"] or "", value
        )
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    return value


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return interpolate(loaded, {})  # type: ignore[no-any-return]


def test_compose_yaml_is_valid_against_the_compose_specification_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=str)
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_the_schema_check_would_catch_a_broken_file() -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = compose()
    broken["services"]["api"]["depends_on"] = {"migrate": {"condition": "whenever"}}
    broken["services"]["api"]["restart_policy"] = "always"
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 2


def flowledger_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if "build" in s}


def parses(parser: argparse.ArgumentParser, command: list[str]) -> bool:
    try:
        parser.parse_args(command)
    except SystemExit:  # argparse's answer to a command it does not know
        return False
    return True


def test_every_flowledger_service_runs_a_real_flowledger_command() -> None:
    services = flowledger_services()
    assert {"migrate", "api", "projections", "relay", "executor", "webhooks"} <= set(services)
    parser = build_parser(Settings())
    for name, service in services.items():
        assert parses(parser, service["command"]), f"{name}: {service['command']}"
    assert not parses(parser, ["worker", "no-such-worker"]), "the check would catch a bad command"


def test_compose_runs_every_worker_kind() -> None:
    deployed = {
        service["command"][1]
        for service in flowledger_services().values()
        if service["command"][0] == "worker"
    }
    assert deployed == set(WORKERS)


def test_services_start_in_order_and_report_their_health() -> None:
    services = compose()["services"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in flowledger_services().items():
        if name == "migrate":
            continue
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in service, name
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://"), name
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        if service["command"][0] == "worker":
            assert service["environment"]["FLOWLEDGER_WORKER_METRICS_PORT"] == "9100", name
            assert "ports" not in service, f"{name} must scale: no fixed host port"
    for name in ("relay", "executor"):
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["kafka"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_the_image_runs_as_a_user_and_carries_the_migrations() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER (?!root)\w+", final_stage, re.MULTILINE)
    assert "COPY migrations ./migrations" in final_stage
    assert "COPY alembic.ini ./alembic.ini" in final_stage
    assert "FLOWLEDGER_MIGRATIONS_DIR=/app/migrations" in final_stage
    assert 'ENTRYPOINT ["flowledger"]' in final_stage
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "migrations" not in ignored
    assert "alembic.ini" not in ignored


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.mark.skipif(_compose_cli() is None, reason="Docker Compose is not installed here")
def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_cli()
    assert command is not None
    result = subprocess.run(
        [*command, "--file", str(ROOT / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        check=False,
        env={**os.environ, "COMPOSE_PROJECT_NAME": "flowledger-test"},
    )
    assert result.returncode == 0, result.stderr.decode()


class AnsweringEngine:
    """Stands in for the database engine of a scrape whose measurement succeeds."""

    def connect(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


def scrape_time_metrics(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The series the scrape-time collectors (follower lag, connections) add, read from the
    collectors themselves."""
    follower = FollowerLag("agents", position=1, lag_events=1, lag_seconds=0.5, rebuild_position=1)
    monkeypatch.setattr(lag, "measure", lambda conn, store: Lags(head=2, followers=[follower]))
    usage = ConnectionUsage(in_use=3, limit=97, max_connections=100, by_role={"api": 3})
    monkeypatch.setattr(connections, "connection_usage", lambda conn: usage)
    collectors = [
        LagCollector(AnsweringEngine(), store=None),  # type: ignore[arg-type]
        ConnectionsCollector(AnsweringEngine()),  # type: ignore[arg-type]
    ]
    return {
        sample.name
        for collector in collectors
        for family in collector.collect()
        for sample in family.samples
    }


def metrics_in(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers inside braces are not)."""
    return set(re.findall(r"\bflowledger_[a-z_]+\b", re.sub(r"\{[^}]*\}", "", expression)))


def test_metrics_in_reads_metric_names_not_label_names() -> None:
    assert metrics_in('flowledger_a{flowledger_b="x"} / flowledger_c') == {
        "flowledger_a",
        "flowledger_c",
    }


def test_the_alerting_rules_use_metrics_that_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import REGISTRY  # noqa: PLC0415

    from flowledger.observability import metrics  # noqa: PLC0415, F401  (declares the metrics)

    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    known = {
        sample_name
        for family in REGISTRY.collect()
        for sample_name in (family.name, f"{family.name}_total", f"{family.name}_bucket")
    }
    known |= scrape_time_metrics(monkeypatch)
    for group in rules["groups"]:
        for rule in group["rules"]:
            used = metrics_in(rule["expr"])
            assert used, f"{rule['alert']} reads no flowledger metric"
            assert used <= known, f"{rule['alert']} uses unknown metrics {used - known}"
