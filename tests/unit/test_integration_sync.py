"""What an n8n sync decides for each workflow (the n8n API's answer, read)."""

from __future__ import annotations

import uuid

import pytest

from flowledger.domain.integrations import ExternalWorkflow, plan_sync
from flowledger.n8n.api import read_workflow

pytestmark = pytest.mark.unit
BASE = "http://n8n.test"


def webhook_node(method: str = "POST", path: str = "greet") -> dict[str, object]:
    return {
        "type": "n8n-nodes-base.webhook",
        "parameters": {"httpMethod": method, "path": path},
    }


def test_an_active_workflow_started_by_a_post_webhook_is_callable() -> None:
    found = read_workflow(
        BASE, {"id": "w1", "name": "Greeter", "active": True, "nodes": [webhook_node()]}
    )
    assert found.callable and found.webhook_url == f"{BASE}/webhook/greet"


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"active": True, "nodes": []}, "it is not started by a Webhook node"),
        ({"active": True, "nodes": [webhook_node("GET")]}, "its Webhook node takes GET, not POST"),
        (
            {"active": False, "nodes": [webhook_node()]},
            "it is not active (its webhook does not answer)",
        ),
        ({"active": True, "isArchived": True, "nodes": [webhook_node()]}, "it is archived"),
    ],
)
def test_workflows_that_cannot_be_called_say_why(item: dict[str, object], reason: str) -> None:
    found = read_workflow(BASE, {"id": "w", "name": "n", **item})
    assert not found.callable and found.problem == reason


def workflow(wid: str, ok: bool = True) -> ExternalWorkflow:
    url = f"{BASE}/webhook/{wid}"
    return ExternalWorkflow(wid, wid, ok, url, None if ok else "it is not active")


def test_a_sync_registers_new_updates_known_and_deactivates_gone_or_broken() -> None:
    known = {"kept": uuid.uuid4(), "broken": uuid.uuid4(), "gone": uuid.uuid4()}
    plan = plan_sync(known, [workflow("new"), workflow("kept"), workflow("broken", False)], None)
    assert [w.id for w in plan.register] == ["new"]
    assert [(agent, w.id) for agent, w in plan.update] == [(known["kept"], "kept")]
    assert [(w, reason) for w, _, reason in plan.deactivate] == [
        ("broken", "it is not active"),
        ("gone", "it no longer exists"),
    ]
    assert [e["workflow_id"] for e in plan.errors] == ["broken"]


def test_a_sync_of_some_workflows_leaves_the_others_alone() -> None:
    known = {"other": uuid.uuid4()}
    plan = plan_sync(known, [workflow("asked")], ["asked", "missing"])
    assert plan.deactivate == []
    assert [(e["workflow_id"], e["reason"]) for e in plan.errors] == [
        ("missing", "no such workflow in n8n")
    ]
