"""``flowledger users create``: the first admin from a terminal, without the API running; the
password from standard input or made up and shown once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from flowledger.projections.tables import users
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.security.passwords import verify_password
from tests.support import REPO_ROOT

pytestmark = pytest.mark.integration


def flowledger(database: Database, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "flowledger", *args],
        cwd=REPO_ROOT,
        env={**env, "DATABASE_URL": database.libpq_url, "FLOWLEDGER_LOG_LEVEL": "WARNING"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stored(runtime: Runtime, email: str) -> tuple[str, str, str]:
    with runtime.engine.connect() as conn:
        row = conn.execute(
            select(users.c.role, users.c.password_hash, users.c.created_by).where(
                users.c.email == email
            )
        ).one()
    return row.role, row.password_hash, row.created_by


def test_users_create_admin_makes_an_admin_who_can_sign_in_at_once(
    database: Database, runtime: Runtime
) -> None:
    made = flowledger(
        database,
        "users", "create", "--admin", "--email", "root@example.com", "--password-stdin",
        stdin="a long enough secret\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "created user" in made.stdout and "(admin)" in made.stdout
    assert "a long enough secret" not in made.stdout + made.stderr
    role, password_hash, actor = stored(runtime, "root@example.com")
    assert (role, actor) == ("admin", "system:cli")  # projected before the command ended
    assert verify_password(password_hash, "a long enough secret")

    generated = flowledger(
        database, "users", "create", "--email", "ops@example.com", "--role", "operator"
    )
    assert generated.returncode == 0, generated.stderr
    password = generated.stdout.split("password ", 1)[1].split()[0]
    assert verify_password(stored(runtime, "ops@example.com")[1], password)


def test_users_create_refuses_a_taken_email_or_a_weak_password(database: Database) -> None:
    assert flowledger(database, "users", "create", "--email", "a@example.com").returncode == 0
    taken = flowledger(database, "users", "create", "--email", "A@EXAMPLE.com")
    assert taken.returncode == 1
    assert "already taken" in taken.stderr
    weak = flowledger(
        database, "users", "create", "--email", "b@example.com", "--password-stdin", stdin="short\n"
    )
    assert weak.returncode == 1
    assert "password must be 8 to 256 characters long" in weak.stderr
