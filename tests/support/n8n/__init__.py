"""A real n8n server for tests: installed from the npm registry once per machine (``install.sh``,
into ``~/.cache/flowledger/n8n/<version>``), started on a free loopback port with its own user
folder, its owner and an API key created through its own REST API."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from tests.support.polling import eventually
from tests.support.ports import free_port

INSTALL_SCRIPT: Final = Path(__file__).with_name("install.sh")
OWNER: Final = {
    "email": "owner@flowledger.test",
    "firstName": "Ada",
    "lastName": "Owner",
    "password": "Flowledger-0wner-password",
}
API_KEY_SCOPES: Final = [
    "workflow:read",
    "workflow:list",
    "workflow:create",
    "workflow:update",
    "workflow:delete",
    "workflow:activate",
    "workflow:deactivate",
]
STARTUP_TIMEOUT_S: Final = 180.0


class N8nUnavailable(RuntimeError):
    """n8n could not be installed here (no npm, or the install failed)."""


def install() -> Path:
    """The n8n install folder, installing it first if this machine has none (minutes)."""
    if shutil.which("npm") is None:
        raise N8nUnavailable("npm is not installed (n8n needs Node 20 and npm)")
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        raise N8nUnavailable(f"installing n8n failed: {done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class N8n:
    """A running n8n: its base URL, an API key of its owner, and a client of its public API."""

    url: str
    api_key: str
    api: httpx.Client = field(repr=False)

    def create_workflow(
        self, name: str, nodes: list[dict[str, Any]], connections: dict[str, Any]
    ) -> str:
        body = {"name": name, "nodes": nodes, "connections": connections, "settings": {}}
        response = self.api.post("/workflows", json=body)
        response.raise_for_status()
        return str(response.json()["id"])

    def activate(self, workflow_id: str) -> None:
        self.api.post(f"/workflows/{workflow_id}/activate").raise_for_status()

    def deactivate(self, workflow_id: str) -> None:
        self.api.post(f"/workflows/{workflow_id}/deactivate").raise_for_status()

    def delete(self, workflow_id: str) -> None:
        self.api.delete(f"/workflows/{workflow_id}").raise_for_status()


def webhook_node(path: str, method: str = "POST") -> dict[str, Any]:
    return {
        "id": f"hook-{path}",
        "name": "Webhook",
        "type": "n8n-nodes-base.webhook",
        "typeVersion": 2,
        "position": [0, 0],
        "webhookId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"flowledger-test-hook:{path}")),
        "parameters": {"httpMethod": method, "path": path, "responseMode": "lastNode"},
    }


def set_node(name: str, field_name: str, expression: str) -> dict[str, Any]:
    """A Set node giving one field from an expression (``={{ ... }}``)."""
    return {
        "id": f"set-{name}",
        "name": name,
        "type": "n8n-nodes-base.set",
        "typeVersion": 3.4,
        "position": [200, 0],
        "parameters": {
            "mode": "manual",
            "assignments": {
                "assignments": [
                    {"id": "a1", "name": field_name, "value": expression, "type": "string"}
                ]
            },
            "options": {},
        },
    }


def then(first: str, second: str) -> dict[str, Any]:
    return {first: {"main": [[{"node": second, "type": "main", "index": 0}]]}}


@contextmanager
def running_n8n(user_folder: Path) -> Iterator[N8n]:
    """Install (once per machine) and start n8n; create its owner and an API key."""
    binary = install() / "node_modules" / ".bin" / "n8n"
    port = free_port()
    env = {
        **os.environ,
        "N8N_USER_FOLDER": str(user_folder),
        "N8N_PORT": str(port),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_HOST": "127.0.0.1",
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_HIRING_BANNER_ENABLED": "false",
        "N8N_SECURE_COOKIE": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
        "DB_SQLITE_POOL_SIZE": "2",
    }
    log = (user_folder / "n8n.log").open("wb")
    process = subprocess.Popen(
        [str(binary), "start"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            """Its REST API answers JSON (``/healthz`` answers before the routes exist)."""
            if process.poll() is not None:
                raise RuntimeError(f"n8n exited with {process.returncode}; see {log.name}")
            settings = httpx.get(f"{url}/rest/settings", timeout=2)
            json_type = settings.headers.get("content-type", "").startswith("application/json")
            return settings.status_code == 200 and json_type

        eventually(
            ready,
            what="n8n's REST API to answer",
            timeout_s=STARTUP_TIMEOUT_S,
            interval_s=0.5,
            ignoring=(httpx.HTTPError,),
        )
        with httpx.Client(base_url=url, timeout=30) as owner:
            owner.post("/rest/owner/setup", json=OWNER).raise_for_status()
            created = owner.post(
                "/rest/api-keys",
                json={"label": "flowledger tests", "expiresAt": None, "scopes": API_KEY_SCOPES},
            )
            created.raise_for_status()
            api_key = str(created.json()["data"]["rawApiKey"])
        with httpx.Client(
            base_url=f"{url}/api/v1", headers={"X-N8N-API-KEY": api_key}, timeout=30
        ) as api:
            yield N8n(url, api_key, api)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
