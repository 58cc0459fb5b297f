"""Security settings, read from the environment kept in :attr:`Settings.extra`.

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
MIN_ADMIN_KEY_LENGTH: Final = 16


@dataclass(frozen=True)
class SecuritySettings:
    public_paths: tuple[str, ...] = DEFAULT_PUBLIC_PATHS
    """Paths answered without credentials; an entry ending in ``*`` is a prefix."""
    jwt_secret: str | None = None
    """HMAC secret of bearer tokens (HS256 unless ``jwt_algorithm`` says otherwise)."""
    jwt_public_key: str | None = None
    """PEM public key of bearer tokens (RS256 unless ``jwt_algorithm`` says otherwise)."""
    jwt_algorithm: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_role_claim: str = "role"
    jwt_leeway_s: int = 0
    rate_limit: tuple[RateUnit, int] | None = ("minute", 600)
    """Requests allowed per credential (per API process) and unit; None: no limit."""
    audit_retention_days: int | None = 365
    """Audit rows older than this are deleted (None: kept forever). At least 90."""
    audit_purge_interval_s: float = 3600.0
    workflow_grants: bool = False
    """Enforce per-workflow grants (ADR 0010): non-admins need ownership or a grant. Off: the
    role alone decides, as before grants existed (grants are still recorded)."""

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
        secret = env.get("FLOWLEDGER_JWT_SECRET") or None
        public_key = _pem(env.get("FLOWLEDGER_JWT_PUBLIC_KEY") or None)
        algorithm = (env.get("FLOWLEDGER_JWT_ALGORITHM") or "").upper() or None
        if algorithm is not None:
            _check_algorithm(algorithm, secret, public_key)
        return cls(
            public_paths=_paths(env.get("FLOWLEDGER_PUBLIC_PATHS")),
            jwt_secret=secret,
            jwt_public_key=public_key,
            jwt_algorithm=algorithm,
            jwt_audience=env.get("FLOWLEDGER_JWT_AUDIENCE") or None,
            jwt_issuer=env.get("FLOWLEDGER_JWT_ISSUER") or None,
            jwt_role_claim=env.get("FLOWLEDGER_JWT_ROLE_CLAIM") or "role",
            jwt_leeway_s=_whole(env, "FLOWLEDGER_JWT_LEEWAY", 0),
            rate_limit=_rate(env.get("FLOWLEDGER_RATE_LIMIT")),
            audit_retention_days=_retention(env.get("FLOWLEDGER_AUDIT_RETENTION_DAYS")),
            audit_purge_interval_s=float(_whole(env, "FLOWLEDGER_AUDIT_PURGE_INTERVAL", 3600)),
            workflow_grants=_switch(env, "FLOWLEDGER_WORKFLOW_GRANTS", default=False),
        )


def _check_algorithm(algorithm: str, secret: str | None, public_key: str | None) -> None:
    if algorithm in HMAC_ALGORITHMS:
        needed, given = "FLOWLEDGER_JWT_SECRET", secret
    elif algorithm in PUBLIC_KEY_ALGORITHMS:
        needed, given = "FLOWLEDGER_JWT_PUBLIC_KEY", public_key
    else:
        known = ", ".join(HMAC_ALGORITHMS + PUBLIC_KEY_ALGORITHMS)
        raise SettingsError(f"FLOWLEDGER_JWT_ALGORITHM must be one of {known}, got {algorithm}")
    if not given:
        raise SettingsError(f"FLOWLEDGER_JWT_ALGORITHM {algorithm} needs {needed}")


def _whole(env: Mapping[str, str], key: str, default: int) -> int:
    raw = (env.get(key) or "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise SettingsError(f"{key} must be a whole number, got {raw!r}")
    return int(raw)


def _paths(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_PUBLIC_PATHS
    paths = tuple(p.strip() for p in raw.split(",") if p.strip())
    for path in paths:
        if not path.startswith("/"):
            raise SettingsError(f"FLOWLEDGER_PUBLIC_PATHS entries must start with /, got {path!r}")
        if path.rstrip("*").rstrip("/").startswith("/api") or path in ("/*", "*"):
            raise SettingsError(f"FLOWLEDGER_PUBLIC_PATHS cannot open the API: {path!r}")
    return paths


def _switch(env: Mapping[str, str], key: str, *, default: bool) -> bool:
    raw = (env.get(key) or "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise SettingsError(f"{key} must be on or off, got {raw!r}")


def _rate(raw: str | None) -> tuple[RateUnit, int] | None:
    if raw is None or raw.strip() == "":
        return ("minute", 600)
    if raw.strip().lower() in ("off", "0", "none"):
        return None
    found = _RATE.match(raw.lower())
    if not found or int(found[1]) < 1:
        raise SettingsError(
            f"FLOWLEDGER_RATE_LIMIT must look like 600/minute (or off), got {raw!r}"
        )
    return cast(RateUnit, found[2]), int(found[1])


def _retention(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return 365
    if raw.strip().lower() == "forever":
        return None
    if not raw.strip().isdigit() or int(raw) < MIN_RETENTION_DAYS:
        raise SettingsError(
            f"FLOWLEDGER_AUDIT_RETENTION_DAYS must be a number of days, at least "
            f"{MIN_RETENTION_DAYS} (or forever), got {raw!r}"
        )
    return int(raw)


def _pem(value: str | None) -> str | None:
    """A PEM key given inline, or the path of a file holding one."""
    if value is None or value.lstrip().startswith("-----BEGIN"):
        return value
    path = Path(value)
    if not path.is_file():
        raise SettingsError(
            "FLOWLEDGER_JWT_PUBLIC_KEY must be a PEM public key or the path of a file with one"
        )
    return path.read_text()
