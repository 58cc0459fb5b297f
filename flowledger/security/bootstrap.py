"""The first admin key of ``flowledger dev``: created the first time, kept in
``$FLOWLEDGER_DATA_DIR/admin-api-key`` (mode 0600), printed when it is new.

It is an ordinary API key (an event in the store, audited, revocable). When the file's key no
longer works (a fresh database, or the key was revoked or has expired), a new one replaces it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, select

from flowledger.commands.api_keys import IssueApiKey, issue_api_key
from flowledger.domain.access import Role
from flowledger.domain.api_keys import hash_api_key
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.api_keys import ApiKeysProjection
from flowledger.projections.projector import Projector
from flowledger.projections.tables import api_keys
from flowledger.runtime.process import Runtime

ADMIN_KEY_FILE: Final = "admin-api-key"
BOOTSTRAP_ACTOR: Final = "system:dev"


@dataclass(frozen=True)
class DevAdminKey:
    key: str
    path: Path
    created: bool


def key_works(engine: Engine, key: str, now: datetime) -> bool:
    with engine.connect() as conn:
        row = conn.execute(
            select(api_keys.c.role, api_keys.c.revoked_at, api_keys.c.expires_at).where(
                api_keys.c.key_hash == hash_api_key(key)
            )
        ).one_or_none()
    return (
        row is not None
        and row.role == Role.ADMIN
        and row.revoked_at is None
        and (row.expires_at is None or row.expires_at > now)
    )


def ensure_dev_admin_key(runtime: Runtime, data_dir: Path) -> DevAdminKey:
    path = data_dir / ADMIN_KEY_FILE
    # The api_keys projection may lag if the last run stopped early: bring it up to date.
    _catch_up_api_keys(runtime)
    if path.is_file():
        key = path.read_text().strip()
        if key and key_works(runtime.engine, key, datetime.now(UTC)):
            return DevAdminKey(key, path, created=False)
    outcome = issue_api_key(
        runtime.store,
        IssueApiKey(name="flowledger dev admin", role=Role.ADMIN.value),
        EventMetadata.system(BOOTSTRAP_ACTOR),
    )
    write_secret(path, outcome.key)
    _catch_up_api_keys(runtime)
    return DevAdminKey(outcome.key, path, created=True)


def _catch_up_api_keys(runtime: Runtime) -> None:
    projector = Projector(ApiKeysProjection(), runtime.store, runtime.engine)
    Follower(runtime.store, projector).catch_up()


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path``, readable by this user only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    path.chmod(0o600)
