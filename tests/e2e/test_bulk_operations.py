"""Bulk operations over HTTP: the real app with projections in-process and its bulk runner; the
runs are recorded straight into the store in the states a bulk operation meets (no executor
here: what a retry then does is covered in test_bulk_retry.py)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, text

from flowledger.bulk.runner import LOCK_CLASS, lock_key
from flowledger.domain.plans import StepPlan, WorkflowPlan
from flowledger.domain.runs import Run
from flowledger.eventlog.store import EventMetadata
from flowledger.http.app import create_app
from flowledger.projections.tables import runs
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.conftest import TEST_ENVIRONMENT, make_settings
from tests.support.http import ApiClient
from tests.support.polling import eventually
from tests.support.runs import run_in_state

pytestmark = pytest.mark.e2e
META = EventMetadata.system("seeder")
MIX = {"PENDING": 100, "RUNNING": 80, "FAILED": 60, "SUCCEEDED": 40, "CANCELLED": 20}


@pytest.fixture
def settings(database: Database) -> Settings:
    return make_settings(
        database,
        extra={
            **TEST_ENVIRONMENT,
            "FLOWLEDGER_BULK_RATE": "2000",
            "FLOWLEDGER_BULK_MAX_RUNS": "400",
        },
    )


@pytest.fixture
def api(settings: Settings, runtime: Runtime) -> Iterator[ApiClient]:
    app = create_app(settings, runtime=runtime, workers=("projections",))
    with ApiClient(app) as client:
        yield client


def seed(runtime: Runtime, workflow_id: uuid.UUID, mix: dict[str, int]) -> dict[uuid.UUID, str]:
    """Runs of one workflow in the given states, oldest first; their ids and statuses."""
    seeded: dict[uuid.UUID, str] = {}
    for status, count in mix.items():
        for _ in range(count):
            run = run_in_state(status, workflow_id=workflow_id)
            runtime.store.record(run, metadata=META)
            seeded[run.id] = status
    return seeded


def projected(api: ApiClient, workflow_id: uuid.UUID, count: int) -> None:
    eventually(
        lambda: api.get("/api/v1/runs", params={"workflow_id": str(workflow_id)}).json()["total"],
        lambda total: total == count,
        what=f"{count} runs of workflow {workflow_id} in the runs list",
    )


def finished(api: ApiClient, operation_id: str) -> dict[str, Any]:
    return eventually(  # type: ignore[no-any-return]
        lambda: api.get(f"/api/v1/runs/bulk/{operation_id}").json(),
        lambda operation: operation["status"] != "RUNNING",
        what=f"bulk operation {operation_id} to end",
        timeout_s=60,
    )


def phantom_run(runtime: Runtime, workflow_id: uuid.UUID) -> uuid.UUID:
    """A run the runs list shows but the event store does not know (a read table restored from
    another backup than the store, say): the one way, short of a broken database, that a run
    a bulk operation matched cannot be acted on at all."""
    run_id = uuid.uuid4()
    now = datetime.now(UTC)
    with runtime.engine.begin() as conn:
        conn.execute(
            insert(runs).values(
                id=run_id, workflow_id=workflow_id, workflow_name="wf", workflow_version=1,
                status="RUNNING", input_data={}, variables={}, triggered_by="ghost",
                retry_count=0, step_count=2, created_at=now, updated_at=now, version=1,
                position=0,
            )
        )  # fmt: skip
    return run_id


def test_a_bulk_cancel_over_hundreds_of_runs_in_mixed_states_counts_and_audits_each_one(
    api: ApiClient, runtime: Runtime
) -> None:
    workflow, other = uuid.uuid4(), uuid.uuid4()
    seeded = seed(runtime, workflow, MIX)
    untouched = seed(runtime, other, {"RUNNING": 5})
    projected(api, workflow, sum(MIX.values()))
    ghost = phantom_run(runtime, workflow)

    accepted = api.post(
        "/api/v1/runs/bulk/cancel",
        json={"workflow_id": str(workflow), "reason": "agent outage"},
        headers={"X-Correlation-ID": "bulk-cancel-1"},
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["Location"] == f"/api/v1/runs/bulk/{accepted.json()['id']}"
    assert accepted.json()["matched"] == len(seeded) + 1
    operation = finished(api, accepted.json()["id"])

    assert operation["status"] == "COMPLETED"
    assert (operation["matched"], operation["done"], operation["skipped"], operation["failed"]) == (
        301,
        180,
        120,
        1,
    )
    assert operation["pending"] == 0
    assert operation["skipped_by_status"] == {"FAILED": 60, "SUCCEEDED": 40, "CANCELLED": 20}
    assert [(f["run_id"], f["reason"]) for f in operation["failures"]] == [
        (str(ghost), f"run {ghost} not found")
    ]
    assert operation["filters"] == {"workflow_id": str(workflow)}
    assert operation["correlation_id"] == "bulk-cancel-1"

    for run_id, before in seeded.items():
        run = runtime.store.get(Run, run_id)
        expected = "CANCELLED" if before in ("PENDING", "RUNNING") else before
        assert run.status == expected
        if before in ("PENDING", "RUNNING"):
            assert run.error == f"cancelled by bulk operation {operation['id']}: agent outage"
    assert {runtime.store.get(Run, run_id).status for run_id in untouched} == {"RUNNING"}

    items = api.get(
        f"/api/v1/runs/bulk/{operation['id']}/items", params={"outcome": "done", "page_size": 100}
    ).json()
    assert items["total"] == 180
    assert {i["run_status"] for i in items["items"]} == {"CANCELLED"}

    audited = eventually(
        lambda: api.get(
            "/api/v1/audit",
            params={"correlation_id": "bulk-cancel-1", "entity_type": "run", "page_size": 100},
        ).json(),
        lambda page: page["total"] == 180,
        what="an audit row for every run the operation cancelled",
    )
    assert {(e["action"], e["actor"]) for e in audited["items"]} == {("cancelled", "admin-env")}
    per_item = api.get(
        "/api/v1/audit", params={"correlation_id": "bulk-cancel-1", "entity_type": "bulk_item"}
    ).json()
    assert per_item["total"] == 301


def test_a_dry_run_answers_what_the_bulk_retry_then_does_and_changes_nothing(
    api: ApiClient, runtime: Runtime
) -> None:
    workflow = uuid.uuid4()
    seeded = seed(runtime, workflow, {"FAILED": 6, "CANCELLED": 3, "SUCCEEDED": 2, "RUNNING": 1})
    projected(api, workflow, 12)
    stranger = uuid.uuid4()
    ids = [*seeded, stranger]
    head = runtime.store.head()

    dry = api.post(
        "/api/v1/runs/bulk/retry",
        json={"run_ids": [str(i) for i in ids], "dry_run": True},
        params={"page_size": 5},
    )
    assert dry.status_code == 200, dry.text
    preview = dry.json()
    assert runtime.store.head() == head, "a dry run records nothing"
    assert (preview["matched"], preview["would_apply"], preview["would_skip"]) == (12, 9, 3)
    assert preview["by_status"] == {"FAILED": 6, "CANCELLED": 3, "SUCCEEDED": 2, "RUNNING": 1}
    assert preview["unmatched_run_ids"] == [str(stranger)]
    assert preview["within_limit"] is True
    listed = preview["runs"]
    assert (listed["total"], listed["total_pages"], len(listed["items"])) == (12, 3, 5)
    first = listed["items"][0]
    assert (first["run_id"], first["would"]) == (str(ids[0]), "apply")
    assert [s["step_id"] for s in first["retry_plan"]["rerun_steps"]] == ["b"]
    assert first["retry_plan"]["reused_steps"] == [
        {"step_id": "a", "agent_name": "echo", "output_data": {"from": "a"}}
    ]
    last_page = api.post(
        "/api/v1/runs/bulk/retry",
        json={"run_ids": [str(i) for i in ids], "dry_run": True},
        params={"page_size": 5, "page": 3},
    ).json()["runs"]["items"]
    refused = [r for r in last_page if r["would"] == "skip"]
    assert {r["status"] for r in refused} == {"SUCCEEDED", "RUNNING"}
    assert all("only FAILED or CANCELLED runs retry" in r["reason"] for r in refused)
    assert all(r["retry_plan"] is None for r in refused)

    real = api.post("/api/v1/runs/bulk/retry", json={"run_ids": [str(i) for i in ids]})
    assert real.status_code == 202, real.text
    operation = finished(api, real.json()["id"])
    assert (operation["done"], operation["skipped"], operation["failed"]) == (9, 3, 0)
    retried = Counter(runtime.store.get(Run, run_id).retry_number for run_id in seeded)
    assert retried == Counter({1: 9, 0: 3})


def test_a_limit_takes_the_oldest_and_too_many_matches_without_one_is_refused(
    api: ApiClient, runtime: Runtime
) -> None:
    workflow = uuid.uuid4()
    seeded = list(seed(runtime, workflow, {"RUNNING": 401}))
    projected(api, workflow, 401)
    too_many = api.post("/api/v1/runs/bulk/cancel", json={"workflow_id": str(workflow)})
    assert too_many.status_code == 422
    assert "401 runs match; at most 400" in too_many.json()["errors"][0]["message"]
    dry = api.post(
        "/api/v1/runs/bulk/cancel", json={"workflow_id": str(workflow), "dry_run": True}
    ).json()
    assert (dry["matched"], dry["within_limit"]) == (401, False)

    above = api.post("/api/v1/runs/bulk/cancel", json={"workflow_id": str(workflow), "limit": 401})
    assert above.status_code == 422
    assert above.json()["errors"][0] == {
        "location": "body",
        "field": "limit",
        "message": "at most 400 runs per bulk operation",
    }

    limited = api.post(
        "/api/v1/runs/bulk/cancel", json={"workflow_id": str(workflow), "limit": 3}
    ).json()
    assert limited["matched"] == 3
    finished(api, limited["id"])
    items = api.get(f"/api/v1/runs/bulk/{limited['id']}/items").json()["items"]
    assert [i["run_id"] for i in items] == [str(run_id) for run_id in seeded[:3]]


def test_runs_are_filtered_by_the_agent_a_step_calls(api: ApiClient, runtime: Runtime) -> None:
    workflow = uuid.uuid4()
    seed(runtime, workflow, {"FAILED": 2})
    echo_only = WorkflowPlan(
        steps=(StepPlan("x", "echo"), StepPlan("y", "echo", depends_on=("x",)))
    )
    solo = run_in_state("FAILED", workflow_id=workflow, plan=echo_only)
    runtime.store.record(solo, metadata=META)
    projected(api, workflow, 3)
    by_agent = api.get("/api/v1/runs", params={"agent_name": "transform"}).json()
    assert by_agent["total"] == 2
    assert str(solo.id) not in {r["id"] for r in by_agent["items"]}
    dry = api.post(
        "/api/v1/runs/bulk/retry", json={"agent_name": "echo", "status": "FAILED", "dry_run": True}
    ).json()
    assert dry["matched"] == 3


INVALID: list[tuple[dict[str, Any], str]] = [
    ({}, "body"),
    ({"reason": "nothing to match"}, "body"),
    ({"status": "FAILED", "created_from": "2026-01-02T00:00:00Z",
      "created_to": "2026-01-01T00:00:00Z"}, "created_to"),
    ({"status": "DONE"}, "status"),
    ({"status": "FAILED", "limit": 0}, "limit"),
    ({"run_ids": []}, "run_ids"),
    ({"run_ids": ["not-a-uuid"]}, "run_ids"),
    ({"status": "FAILED", "colour": "red"}, "colour"),
]  # fmt: skip


def test_a_bulk_request_is_validated_field_by_field(api: ApiClient) -> None:
    for body, field in INVALID:
        for action in ("cancel", "retry"):
            response = api.post(f"/api/v1/runs/bulk/{action}", json=body)
            assert response.status_code == 422, (body, response.text)
            named = {re.split(r"[.\[]", e["field"])[0] or "body" for e in response.json()["errors"]}
            assert field in named, (body, response.json())


def test_unknown_operations_are_404_and_an_ended_one_cannot_stop(
    api: ApiClient, runtime: Runtime
) -> None:
    unknown = uuid.uuid4()
    assert api.get(f"/api/v1/runs/bulk/{unknown}").status_code == 404
    assert api.get(f"/api/v1/runs/bulk/{unknown}/items").status_code == 404
    assert api.post(f"/api/v1/runs/bulk/{unknown}/stop").status_code == 404
    workflow = uuid.uuid4()
    seed(runtime, workflow, {"RUNNING": 2})
    projected(api, workflow, 2)
    operation = api.post("/api/v1/runs/bulk/cancel", json={"workflow_id": str(workflow)}).json()
    finished(api, operation["id"])
    refused = api.post(f"/api/v1/runs/bulk/{operation['id']}/stop")
    assert refused.status_code == 409
    assert "is COMPLETED" in refused.json()["detail"]
    listed = api.get("/api/v1/runs/bulk", params={"action": "cancel"}).json()
    assert [o["id"] for o in listed["items"]] == [operation["id"]]


def test_a_stopped_operation_touches_no_further_run_and_reports_what_it_did(
    database: Database, runtime: Runtime
) -> None:
    slow = make_settings(database, extra={**TEST_ENVIRONMENT, "FLOWLEDGER_BULK_RATE": "10"})
    with ApiClient(create_app(slow, runtime=runtime, workers=("projections",))) as api:
        workflow = uuid.uuid4()
        seeded = list(seed(runtime, workflow, {"RUNNING": 40}))
        projected(api, workflow, 40)
        operation = api.post("/api/v1/runs/bulk/cancel", json={"workflow_id": str(workflow)})
        operation_id = operation.json()["id"]
        eventually(
            lambda: api.get(f"/api/v1/runs/bulk/{operation_id}").json()["done"],
            lambda done: done >= 3,
            what="a few runs cancelled",
        )
        stopped = api.post(f"/api/v1/runs/bulk/{operation_id}/stop", json={"reason": "oops"})
        assert stopped.status_code == 200, stopped.text
        assert stopped.json() == {"id": operation_id, "status": "STOPPED", "stop_reason": "oops"}
        eventually(
            lambda: runner_holds(runtime, uuid.UUID(operation_id)),
            lambda held: not held,
            what="the runner to let the operation go",
        )
        report = api.get(f"/api/v1/runs/bulk/{operation_id}").json()
    assert (report["status"], report["stop_reason"]) == ("STOPPED", "oops")
    assert report["done"] + report["pending"] == 40 and report["pending"] > 0
    statuses = [runtime.store.get(Run, run_id).status for run_id in seeded]
    assert statuses == ["CANCELLED"] * report["done"] + ["RUNNING"] * report["pending"]


def runner_holds(runtime: Runtime, operation_id: uuid.UUID) -> bool:
    """Whether some bulk runner holds the operation's advisory lock (drives it)."""
    with runtime.engine.connect() as conn:
        held = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :a "
                "AND objid = :b AND objsubid = 2"
            ),
            {"a": LOCK_CLASS, "b": lock_key(operation_id) & 0xFFFFFFFF},
        ).scalar_one()
    return bool(held)
