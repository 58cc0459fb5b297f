"""What a benchmark registers before it loads the system: agents and workflows, over HTTP or
through the command layer."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx

from flowledger.commands import agents, workflows
from flowledger.eventlog.store import EventMetadata, EventStore


def _checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


def register_agent(api: httpx.Client, name: str, url: str, timeout_ms: int = 30000) -> str:
    body = {"name": name, "url": url, "auth_type": "none", "timeout_ms": timeout_ms}
    return str(_checked(api.post("/api/v1/agents", json=body))["id"])


def chain_definition(agent_name: str, steps: int) -> dict[str, Any]:
    """``steps`` steps on one agent, one after another, each passing the previous output on."""
    ids = [f"s{n}" for n in range(1, steps + 1)]
    definition: dict[str, Any] = {"start_step": ids[0], "steps": {}}
    for n, step in enumerate(ids):
        source = "$.input" if n == 0 else f"$.steps.{ids[n - 1]}.output"
        definition["steps"][step] = {
            "agent_name": agent_name,
            "input_mapping": {"text": f"{source}.text"},
            **({"next_step": ids[n + 1]} if n + 1 < len(ids) else {}),
        }
    return definition


def create_workflow(api: httpx.Client, name: str, definition: dict[str, Any]) -> str:
    body = {"name": name, "definition": definition}
    return str(_checked(api.post("/api/v1/workflows", json=body))["id"])


def echo_chain(store: EventStore, name: str, steps: int) -> UUID:
    """The agent ``echo`` and a workflow ``name`` of ``steps`` steps on it (see
    :func:`chain_definition`), through the command layer; the workflow's id."""
    meta = EventMetadata.system("bench")
    agents.register_agent(
        store, agents.RegisterAgent(name="echo", url="http://127.0.0.1:9/unused"), meta
    )
    created = workflows.create_workflow(
        store,
        workflows.CreateWorkflow(name=name, definition=chain_definition("echo", steps)),
        meta,
    )
    return created.aggregate.id
