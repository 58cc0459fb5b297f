"""The core settings every process shares, read once from the environment.

Every setting has an environment variable; the README's settings table lists them. Each
capability keeps its own typed settings beside its code (``ExecutorSettings``,
``KafkaSettings``, ``WebhookSettings``, ``SecuritySettings``, ``StreamSettings``), declared and
read the same way (:mod:`flowledger.runtime.environment`) from :attr:`Settings.extra`, and every
``flowledger`` command checks them all when it starts. Tests build their own :class:`Settings`
with :func:`load_settings` and a mapping instead of ``os.environ``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Final

from flowledger.runtime.environment import (
    SettingsError,
    integer,
    one_of,
    read_settings,
    seconds,
    setting,
    text,
)

__all__ = ["Settings", "SettingsError", "get_settings", "load_settings"]


DEFAULT_DATA_DIR: Final = Path(".flowledger")


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError("must be a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return level


MAX_NICENESS: Final = 19
"""The lowest CPU priority a process can give itself (``nice``)."""


def _port_or_none(raw: str) -> int | None:
    return integer(minimum=0)(raw) or None


@dataclass(frozen=True)
class Settings:
    database_url: str | None = setting("DATABASE_URL", None, text)
    """PostgreSQL URL; ``None`` starts the embedded server under ``data_dir``."""
    data_dir: Path = setting("FLOWLEDGER_DATA_DIR", DEFAULT_DATA_DIR, Path)  # noqa: RUF009
    host: str = setting("FLOWLEDGER_HOST", "127.0.0.1", text)
    port: int = setting("FLOWLEDGER_PORT", 8000, integer(minimum=1))
    api_processes: int = setting("FLOWLEDGER_API_PROCESSES", 1, integer(minimum=1))
    """How many processes ``serve`` and ``dev`` answer HTTP with, on one port: one process's
    Python runs on one core at a time, so a second one lets the API use a second core."""
    admin_api_key: str | None = setting("FLOWLEDGER_ADMIN_API_KEY", None, text)
    log_level: str = setting("FLOWLEDGER_LOG_LEVEL", "INFO", _log_level)
    log_format: str = setting("FLOWLEDGER_LOG_FORMAT", "json", one_of("json", "console"))
    """``json`` for production, ``console`` for people (``flowledger dev`` picks it)."""
    read_wait_timeout_s: float = setting("FLOWLEDGER_READ_WAIT_TIMEOUT", 5.0, seconds())
    """Longest a read waits for projections to reach a position the client asked for."""
    db_pool_size: int = setting("FLOWLEDGER_DB_POOL_SIZE", 10, integer(minimum=5))
    """The most database connections a server process (the API, a worker) holds, LISTEN
    connections included (at least 5: two LISTEN and one per pool); see
    :mod:`flowledger.runtime.connections` for the rest of the connection budget."""
    follower_batch_size: int = setting("FLOWLEDGER_FOLLOWER_BATCH_SIZE", 5000, integer(minimum=1))
    follower_idle_wait_s: float = setting("FLOWLEDGER_FOLLOWER_IDLE_WAIT", 0.5, seconds())
    """Followers wake on NOTIFY; this is how long they sleep when no NOTIFY comes."""
    follower_linger_s: float = setting("FLOWLEDGER_FOLLOWER_LINGER", 0.03, seconds())
    """The least time between two reads of the projections worker: an event appended after a
    quiet moment is read at once, later ones wait for the rest of it and share one batch (see
    :attr:`~flowledger.eventlog.follower.Follower.linger_s`)."""
    follower_niceness: int = setting(
        "FLOWLEDGER_FOLLOWER_NICENESS", 10, integer(minimum=0, maximum=MAX_NICENESS)
    )
    """How much lower the CPU priority of the workers that can wait (projections, relay,
    webhooks) is than that of the API, the executor and the scheduler (``nice``, 0 to 19;
    0: the same). Where they share cores, a run's steps and the API's answers come first, and
    the followers, behind for a moment, read bigger batches (less work per event)."""
    kafka_bootstrap_servers: str | None = setting("KAFKA_BOOTSTRAP_SERVERS", None, text)
    worker_metrics_port: int | None = setting("FLOWLEDGER_WORKER_METRICS_PORT", None, _port_or_none)
    """Where ``flowledger worker`` serves its own ``/metrics`` (unset or 0: it serves none)."""
    readiness_timeout_s: float = setting("FLOWLEDGER_READINESS_TIMEOUT", 2.0, seconds())
    """Longest ``/health/ready`` waits for each dependency (database, broker)."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """The raw environment: each capability's settings class reads its own variables from it
    (through :func:`~flowledger.runtime.environment.read_settings`), and ``OTEL_*`` pass
    through to OpenTelemetry."""

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def load_settings(env: Mapping[str, str]) -> Settings:
    """The core settings from ``env``; raises :class:`SettingsError` naming a bad variable."""
    return read_settings(Settings, env, extra=dict(env))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings(os.environ)
