"""Security settings: who may call the API without credentials, bearer tokens, the rate
limit, the audit log's retention and per-workflow grants (``FLOWLEDGER_PUBLIC_PATHS``,
``FLOWLEDGER_JWT_*``, ``FLOWLEDGER_RATE_LIMIT``, ``FLOWLEDGER_AUDIT_*``,
``FLOWLEDGER_WORKFLOW_GRANTS``); the README's settings table lists them.

They live apart from :class:`~flowledger.runtime.settings.Settings` so that this capability adds its
settings without touching the shared dataclass; ``FLOWLEDGER_ADMIN_API_KEY`` stays there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast

from flowledger.projections.audit import MIN_RETENTION_DAYS
from flowledger.runtime.environment import (
    integer,
    one_of,
    read_settings,
    setting,
    switch,
    text,
)
from flowledger.runtime.settings import Settings, SettingsError

DEFAULT_PUBLIC_PATHS: Final = (
    "/health",
    "/health/ready",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/asyncapi.json",
)
RateUnit = Literal["second", "minute", "hour", "day"]
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
PUBLIC_KEY_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")
JWT_ALGORITHMS: Final = HMAC_ALGORITHMS + PUBLIC_KEY_ALGORITHMS
MIN_ADMIN_KEY_LENGTH: Final = 16
DEFAULT_RATE_LIMIT: Final[tuple[RateUnit, int] | None] = ("minute", 600)
DEFAULT_RETENTION_DAYS: Final[int | None] = 365


# Readers of this capability's variables (see flowledger.runtime.environment): each raises
# ValueError saying what a usable value is; the variable's name is added where they are read.


def _public_paths(raw: str) -> tuple[str, ...]:
    paths = tuple(p.strip() for p in raw.split(",") if p.strip())
    for path in paths:
        if not path.startswith("/"):
            raise ValueError(f"entries must start with /, not {path!r}")
        if path.rstrip("*").rstrip("/").startswith("/api") or path in ("/*", "*"):
            raise ValueError(f"cannot open the API: {path!r}")
    return paths


def _rate_limit(raw: str) -> tuple[RateUnit, int] | None:
    if raw.strip().lower() in ("off", "0", "none"):
        return None
    found = _RATE.match(raw.lower())
    if not found or int(found[1]) < 1:
        raise ValueError("must look like 600/minute (or off)")
    return cast(RateUnit, found[2]), int(found[1])


def _retention_days(raw: str) -> int | None:
    if raw.strip().lower() == "forever":
        return None
    if not raw.strip().isdigit() or int(raw) < MIN_RETENTION_DAYS:
        raise ValueError(f"must be a number of days, at least {MIN_RETENTION_DAYS} (or forever)")
    return int(raw)


def _whole_seconds(raw: str) -> float:
    return float(integer(minimum=0)(raw))


def _pem_public_key(raw: str) -> str:
    """A PEM key given inline, or the path of a file holding one."""
    if raw.lstrip().startswith("-----BEGIN"):
        return raw
    path = Path(raw)
    if not path.is_file():
        raise ValueError("must be a PEM public key or the path of a file with one")
    return path.read_text()


@dataclass(frozen=True)
class SecuritySettings:
    public_paths: tuple[str, ...] = setting(
        "FLOWLEDGER_PUBLIC_PATHS", DEFAULT_PUBLIC_PATHS, _public_paths, blank_is_unset=False
    )
    """Paths answered without credentials; an entry ending in ``*`` is a prefix (set but
    empty: none)."""
    jwt_secret: str | None = setting("FLOWLEDGER_JWT_SECRET", None, text)
    """HMAC secret of bearer tokens (HS256 unless ``jwt_algorithm`` says otherwise)."""
    jwt_public_key: str | None = setting("FLOWLEDGER_JWT_PUBLIC_KEY", None, _pem_public_key)
    """PEM public key of bearer tokens (RS256 unless ``jwt_algorithm`` says otherwise)."""
    jwt_algorithm: str | None = setting(
        "FLOWLEDGER_JWT_ALGORITHM", None, one_of(*JWT_ALGORITHMS, case=str.upper)
    )
    jwt_audience: str | None = setting("FLOWLEDGER_JWT_AUDIENCE", None, text)
    jwt_issuer: str | None = setting("FLOWLEDGER_JWT_ISSUER", None, text)
    jwt_role_claim: str = setting("FLOWLEDGER_JWT_ROLE_CLAIM", "role", text)
    jwt_leeway_s: int = setting("FLOWLEDGER_JWT_LEEWAY", 0, integer(minimum=0))
    rate_limit: tuple[RateUnit, int] | None = setting(
        "FLOWLEDGER_RATE_LIMIT", DEFAULT_RATE_LIMIT, _rate_limit
    )
    """Requests allowed per credential (per API process) and unit; None: no limit."""
    audit_retention_days: int | None = setting(
        "FLOWLEDGER_AUDIT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, _retention_days
    )
    """Audit rows older than this are deleted (None: kept forever). At least 90."""
    audit_purge_interval_s: float = setting(
        "FLOWLEDGER_AUDIT_PURGE_INTERVAL", 3600.0, _whole_seconds
    )
    workflow_grants: bool = setting("FLOWLEDGER_WORKFLOW_GRANTS", False, switch)
    """Enforce per-workflow grants (ADR 0010): non-admins need ownership or a grant. Off: the
    role alone decides, as before grants existed (grants are still recorded)."""

    def __post_init__(self) -> None:
        if self.jwt_algorithm is None:
            return
        if self.jwt_algorithm in HMAC_ALGORITHMS:
            needed, given = "FLOWLEDGER_JWT_SECRET", self.jwt_secret
        else:
            needed, given = "FLOWLEDGER_JWT_PUBLIC_KEY", self.jwt_public_key
        if not given:
            raise SettingsError(f"FLOWLEDGER_JWT_ALGORITHM {self.jwt_algorithm} needs {needed}")

    @property
    def jwt_enabled(self) -> bool:
        return bool(self.jwt_secret or self.jwt_public_key)

    @property
    def jwt_algorithms(self) -> tuple[str, ...]:
        if self.jwt_algorithm:
            return (self.jwt_algorithm,)
        return (("HS256",) if self.jwt_secret else ()) + (("RS256",) if self.jwt_public_key else ())

    @classmethod
    def from_settings(cls, settings: Settings) -> SecuritySettings:
        key = settings.admin_api_key
        if key is not None and (len(key) < MIN_ADMIN_KEY_LENGTH or key != key.strip()):
            raise SettingsError(
                f"FLOWLEDGER_ADMIN_API_KEY must be at least {MIN_ADMIN_KEY_LENGTH} characters "
                "without outer spaces (e.g. `openssl rand -hex 32`)"
            )
        return cls.from_env(settings.extra)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SecuritySettings:
        return read_settings(cls, env)
