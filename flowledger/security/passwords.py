"""Password hashes: argon2id (argon2-cffi), the winner of the Password Hashing Competition and
RFC 9106's recommendation, with OWASP's minimum parameters (19 MiB, 2 passes, 1 lane: about
50 ms of one core per hash). The parameters are written into each hash, so hashes made with
other parameters still verify.

A password is checked against a hash even when no user has the email given, so the time an
answer takes does not tell whether an account exists. Hashing runs in worker threads, at most
:data:`CONCURRENT_HASHES` at a time per process (each takes 19 MiB), so a burst of sign-ins
queues instead of exhausting memory.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import anyio
import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

HASHER: Final = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, type=Type.ID)
CONCURRENT_HASHES: Final = 4


@cache
def _limiter() -> anyio.CapacityLimiter:
    return anyio.CapacityLimiter(CONCURRENT_HASHES)


@cache
def _stand_in_hash() -> str:
    """A hash no password is known to match, checked when there is no account."""
    return HASHER.hash("no account has this password: it only takes the time a check takes")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (None: no account; as slow, and False)."""
    try:
        matched = HASHER.verify(password_hash or _stand_in_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None


async def hash_password_async(password: str) -> str:
    return await anyio.to_thread.run_sync(hash_password, password, limiter=_limiter())


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await anyio.to_thread.run_sync(
        verify_password, password_hash, password, limiter=_limiter()
    )
