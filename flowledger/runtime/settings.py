"""Settings, read once from the environment.

Every setting has an environment variable; the README's settings table lists them. Tests build
their own :class:`Settings` with :func:`load_settings` and a mapping instead of ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    """PostgreSQL URL; ``None`` starts the embedded server under ``data_dir``."""
    data_dir: Path = Path(".flowledger")
    host: str = "127.0.0.1"
    port: int = 8000
    admin_api_key: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    """``json`` for production, ``console`` for people (``flowledger dev`` picks it)."""
    read_wait_timeout_s: float = 5.0
    """Longest a read waits for projections to reach a position the client asked for."""
    db_pool_size: int = 10
    follower_batch_size: int = 500
    follower_idle_wait_s: float = 0.5
    """Followers wake on NOTIFY; this is how long they sleep when no NOTIFY comes."""
    follower_linger_s: float = 0.0
    """After a NOTIFY, how long a follower waits for more events before it reads them."""
    kafka_bootstrap_servers: str | None = None
    worker_metrics_port: int | None = None
    """Where ``flowledger worker`` serves its own ``/metrics`` (unset: it serves none)."""
    readiness_timeout_s: float = 2.0
    """Longest ``/health/ready`` waits for each dependency (database, broker)."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Raw environment, for settings added by later modules."""

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], key: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{key} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{key} must not be negative, got {value}")
    return value


def load_settings(env: Mapping[str, str]) -> Settings:
    log_format = env.get("FLOWLEDGER_LOG_FORMAT", "json").lower()
    if log_format not in ("json", "console"):
        raise SettingsError(f"FLOWLEDGER_LOG_FORMAT must be json or console, got {log_format!r}")
    return Settings(
        database_url=env.get("DATABASE_URL") or None,
        data_dir=Path(env.get("FLOWLEDGER_DATA_DIR") or ".flowledger"),
        host=env.get("FLOWLEDGER_HOST") or "127.0.0.1",
        port=_int(env, "FLOWLEDGER_PORT", 8000, minimum=1),
        admin_api_key=env.get("FLOWLEDGER_ADMIN_API_KEY") or None,
        log_level=(env.get("FLOWLEDGER_LOG_LEVEL") or "INFO").upper(),
        log_format=log_format,
        read_wait_timeout_s=_float(env, "FLOWLEDGER_READ_WAIT_TIMEOUT", 5.0),
        db_pool_size=_int(env, "FLOWLEDGER_DB_POOL_SIZE", 10, minimum=1),
        follower_batch_size=_int(env, "FLOWLEDGER_FOLLOWER_BATCH_SIZE", 500, minimum=1),
        follower_idle_wait_s=_float(env, "FLOWLEDGER_FOLLOWER_IDLE_WAIT", 0.5),
        follower_linger_s=_float(env, "FLOWLEDGER_FOLLOWER_LINGER", 0.0),
        kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        worker_metrics_port=_int(env, "FLOWLEDGER_WORKER_METRICS_PORT", 0, minimum=0) or None,
        readiness_timeout_s=_float(env, "FLOWLEDGER_READINESS_TIMEOUT", 2.0),
        extra=dict(env),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings(os.environ)
