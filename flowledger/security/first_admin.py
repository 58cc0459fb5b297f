"""The first admin user: made by ``flowledger users create --admin`` or, on a database with no
admin user, by ``flowledger dev``, which prints its password once and keeps it in
``$FLOWLEDGER_DATA_DIR/admin-password`` (mode 0600), like the first admin key.

The user is recorded like any other (an event, audited; actor ``system:cli`` or
``system:dev``), and the users projection is brought up to date before the command returns,
so the user can sign in at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import select

from flowledger.commands.users import RegisterUser, register_user
from flowledger.domain.access import Role
from flowledger.domain.errors import raise_if_any
from flowledger.domain.users import User, password_problems
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.projector import Projector
from flowledger.projections.tables import users
from flowledger.projections.users import UsersProjection
from flowledger.runtime.process import Runtime
from flowledger.security.bootstrap import write_secret
from flowledger.security.passwords import hash_password

DEV_ADMIN_EMAIL: Final = "admin@localhost"
ADMIN_PASSWORD_FILE: Final = "admin-password"  # noqa: S105  (a file name)


@dataclass(frozen=True)
class NewUser:
    user: User
    password: str
    """As given, or made up (then it must be shown: it is kept nowhere else)."""
    generated: bool


def new_password() -> str:
    """A password nobody will guess: 128 random bits, in 22 URL-safe characters."""
    return secrets.token_urlsafe(16)


def create_user(
    runtime: Runtime,
    *,
    email: str,
    name: str,
    role: Role,
    password: str | None,
    actor: str,
) -> NewUser:
    """Record a user (raises the domain's errors: invalid input, email taken) and catch the
    users projection up, so the user can sign in at once."""
    chosen = password if password is not None else new_password()
    raise_if_any(password_problems(chosen, email))
    command = RegisterUser(
        email=email, name=name, role=role.value, password_hash=hash_password(chosen)
    )
    outcome = register_user(runtime.store, command, EventMetadata.system(actor))
    catch_up_users(runtime)
    return NewUser(outcome.aggregate, chosen, generated=password is None)


def catch_up_users(runtime: Runtime) -> None:
    projector = Projector(UsersProjection(), runtime.store, runtime.engine)
    Follower(runtime.store, projector).catch_up()


def has_admin_user(runtime: Runtime) -> bool:
    with runtime.engine.connect() as conn:
        found = conn.execute(
            select(users.c.id).where(users.c.role == Role.ADMIN, users.c.status == "active")
        ).first()
    return found is not None


@dataclass(frozen=True)
class DevAdminUser:
    email: str
    password_path: Path
    password: str | None
    """Shown when it was just made; None when an admin user existed already."""


def ensure_dev_admin_user(runtime: Runtime, data_dir: Path) -> DevAdminUser:
    """An admin user for ``flowledger dev``: made (and its password kept) when there is none."""
    path = data_dir / ADMIN_PASSWORD_FILE
    catch_up_users(runtime)
    if has_admin_user(runtime):
        return DevAdminUser(DEV_ADMIN_EMAIL, path, None)
    made = create_user(
        runtime,
        email=DEV_ADMIN_EMAIL,
        name="flowledger dev admin",
        role=Role.ADMIN,
        password=None,
        actor="system:dev",
    )
    write_secret(path, made.password)
    return DevAdminUser(DEV_ADMIN_EMAIL, path, made.password)
