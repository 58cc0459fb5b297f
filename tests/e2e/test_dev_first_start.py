"""The first start of ``flowledger dev``, as a newcomer would see it: anonymous calls are
refused, the printed admin key works, so does the printed admin user's password, an operator
key reads but cannot change agents, its revocation applies at once, and ``flowledger audit
verify`` passes, then fails once a row is tampered with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowledger.runtime.database import Database
from tests.support import REPO_ROOT
from tests.support.polling import eventually
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e


def environment(database: Database, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLEDGER_")}
    return {
        **env,
        "DATABASE_URL": database.libpq_url,
        "FLOWLEDGER_DATA_DIR": str(data_dir),
        "FLOWLEDGER_LOG_LEVEL": "WARNING",
        "FLOWLEDGER_FOLLOWER_IDLE_WAIT": "0.05",
        # A new key is usable once its write answers, which waits for the projection up to
        # this long: a loaded machine (a parallel test run) can take more than the default 5 s.
        "FLOWLEDGER_READ_WAIT_TIMEOUT": "30",
    }


@pytest.fixture
def dev(database: Database, tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    output = tmp_path / "dev.out"
    env = environment(database, tmp_path / "data")
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flowledger", "dev", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def health() -> int:
            assert process.poll() is None, output.read_text()
            return httpx.get(f"{base}/health", timeout=1).status_code

        eventually(
            health,
            lambda status: status == 200,
            what="flowledger dev to answer /health",
            timeout_s=60,
            interval_s=0.1,
            ignoring=(httpx.TransportError,),
        )
        yield {"base": base, "env": env, "data": tmp_path / "data", "output": output}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def audit_verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowledger", "audit", "verify"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_fresh_dev_server_is_locked_and_its_admin_key_opens_it(
    dev: dict[str, Any], database: Database
) -> None:
    base = dev["base"]
    key_file = dev["data"] / "admin-api-key"
    admin_key = key_file.read_text().strip()
    assert admin_key in dev["output"].read_text()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    password_file = dev["data"] / "admin-password"
    password = password_file.read_text().strip()
    assert f"admin user admin@localhost, password {password}" in dev["output"].read_text()
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"

    with httpx.Client(base_url=base, timeout=45) as anonymous:
        assert anonymous.get("/api/v1/agents").status_code == 401
        assert anonymous.get("/health").status_code == 200
        signed_in = anonymous.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": "admin@localhost", "password": password},
        )
        assert signed_in.status_code == 200, signed_in.text
        bearer = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        assert anonymous.get("/api/v1/users/me", headers=bearer).json()["role"] == "admin"
    admin = httpx.Client(base_url=base, timeout=45, headers={"X-API-Key": admin_key})
    with admin:
        made = admin.post("/api/v1/api-keys", json={"name": "ops", "role": "operator"})
        assert made.status_code == 201
        operator = httpx.Client(
            base_url=base, timeout=45, headers={"X-API-Key": made.json()["key"]}
        )
        with operator:
            assert operator.get("/api/v1/agents").status_code == 200
            assert (
                operator.post("/api/v1/agents", json={"name": "a", "url": "http://a"}).status_code
                == 403
            )
            for n in range(10):
                created = admin.post("/api/v1/agents", json={"name": f"a{n}", "url": "http://a"})
                assert created.status_code == 201
                admin.put(f"/api/v1/agents/{created.json()['id']}", json={"timeout_ms": 5000})
            assert admin.delete(f"/api/v1/api-keys/{made.json()['id']}").status_code == 204
            assert operator.get("/api/v1/agents").status_code == 401
        position = created.headers["X-Flowledger-Position"]
        admin.get("/api/v1/audit", headers={"X-Flowledger-Min-Position": position})

    verified = audit_verify(dev["env"])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit verify: OK" in verified.stdout
    with database.connect() as conn:
        conn.execute("UPDATE audit_log SET actor = 'nobody' WHERE action = 'update'")
    tampered = audit_verify(dev["env"])
    assert tampered.returncode == 1
    assert "audit verify: FAILED, 10 discrepancies" in tampered.stdout
