"""Projection settings (``FLOWLEDGER_PROJECTIONS``); the README's settings table lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flowledger.runtime.environment import integer, read_settings, setting
from flowledger.runtime.settings import Settings

PROJECTION_NAMES: tuple[str, ...] = (
    "agents",
    "api_keys",
    "audit_log",
    "bulk_operations",
    "integrations",
    "run_logs",
    "runs",
    "triggers",
    "users",
    "webhooks",
    "workflow_grants",
    "workflows",
)
"""Every projection's name (``registry.all_projections`` checks that it names them all, and
nothing else)."""


BATCH_SIZE: Final = 10_000
"""Most events the projections apply in one transaction, when behind (a worker that keeps up
applies what is new) and in a rebuild. Each batch waits for its slowest projection (runs) to
commit while the others idle, so twice the 5,000 of the other followers caught up 10% faster
with a million events, at 175 MiB of peak RSS instead of 142 (ADR 0015)."""


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in PROJECTION_NAMES]
    if unknown or not names:
        raise ValueError(
            f"must name projections among {', '.join(PROJECTION_NAMES)} (comma-separated)"
        )
    return names


@dataclass(frozen=True)
class ProjectionSettings:
    hosted: tuple[str, ...] | None = setting("FLOWLEDGER_PROJECTIONS", None, _names)
    """The projections a ``flowledger worker projections`` process keeps (None: all of them);
    processes with different lists share the work, and a second process with the same list
    stands by."""
    batch_size: int = setting("FLOWLEDGER_PROJECTIONS_BATCH_SIZE", BATCH_SIZE, integer(minimum=1))
    """Most events ``flowledger worker projections`` reads and applies at once when behind."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ProjectionSettings:
        return read_settings(cls, settings.extra)
