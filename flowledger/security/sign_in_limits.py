"""The limit on failed sign-ins, per account and per address, shared by every API process.

Failures are counted in the database (``sign_in_failures``) in fixed windows: the first
failure of a key starts its window; once a key has the most failures its window allows, every
sign-in for that account (or from that address) is refused, the right password included,
until the window ends. A successful sign-in clears its account's count. Failed sign-ins are
not events: an attack would fill the event store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import case, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger.projections.tables import sign_in_failures
from flowledger.security.sign_in_settings import SignInSettings

ACCOUNT: Final = "account:"
ADDRESS: Final = "address:"


@dataclass(frozen=True)
class SignInLimits:
    per_account: int
    per_address: int
    window: timedelta

    @classmethod
    def from_settings(cls, settings: SignInSettings) -> SignInLimits:
        return cls(
            settings.max_failures_per_account,
            settings.max_failures_per_address,
            timedelta(seconds=settings.failure_window_s),
        )

    def keys(self, account: str, address: str | None) -> list[str]:
        return [ACCOUNT + account] + ([ADDRESS + address] if address else [])

    def _limit(self, key: str) -> int:
        return self.per_account if key.startswith(ACCOUNT) else self.per_address

    async def blocked_for(
        self, engine: AsyncEngine, keys: Sequence[str], now: datetime
    ) -> timedelta | None:
        """How long sign-ins for these keys are refused still (None: they are not)."""
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(sign_in_failures).where(
                    sign_in_failures.c.key.in_(keys),
                    sign_in_failures.c.window_started_at > now - self.window,
                )
            )
            waits = [
                row.window_started_at + self.window - now
                for row in rows
                if row.failures >= self._limit(row.key)
            ]
        return max(waits) if waits else None

    async def record_failure(self, engine: AsyncEngine, keys: Sequence[str], now: datetime) -> None:
        expired = sign_in_failures.c.window_started_at <= now - self.window
        statement = insert(sign_in_failures).values(
            [{"key": key, "window_started_at": now, "failures": 1} for key in keys]
        )
        async with engine.begin() as conn:
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[sign_in_failures.c.key],
                    set_={
                        "failures": case((expired, 1), else_=sign_in_failures.c.failures + 1),
                        "window_started_at": case(
                            (expired, now), else_=sign_in_failures.c.window_started_at
                        ),
                    },
                )
            )
            # Forget windows long over, a few at a time (the index finds them).
            await conn.execute(
                delete(sign_in_failures).where(
                    sign_in_failures.c.window_started_at < now - 2 * self.window
                )
            )

    async def clear(self, engine: AsyncEngine, key: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(delete(sign_in_failures).where(sign_in_failures.c.key == key))
