"""Workflow commands and projections on a real event store: agent facts come from the write
side, every version's plan is kept, names are unique under concurrency, a stale writer gets a
conflict, and the read tables are the fold of the events, rebuilt identically from zero."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from flowledger.commands.agents import (
    DeleteAgent,
    RegisterAgent,
    UpdateAgent,
    delete_agent,
    register_agent,
    update_agent,
)
from flowledger.commands.workflows import (
    CreateWorkflow,
    DeleteWorkflow,
    UpdateWorkflow,
    create_workflow,
    delete_workflow,
    update_workflow,
)
from flowledger.domain.errors import ConcurrentModification, DomainError, InvalidInput, NameTaken
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.projections.projector import Projector
from flowledger.projections.tables import workflow_steps, workflow_versions, workflows
from flowledger.projections.workflows import WorkflowsProjection
from flowledger.runtime.process import Runtime

pytestmark = pytest.mark.integration
META = EventMetadata.system(actor="test")

DEFINITIONS: list[dict[str, Any]] = [
    {"steps": {"a": {"agent_name": "echo"}}},
    {
        "start_step": "a",
        "steps": {
            "a": {"agent_name": "echo", "next_step": "b"},
            "b": {"agent_name": "echo", "input_mapping": {"x": "$.steps.a.output.y"}},
        },
    },
    {
        "steps": {
            "a": {"agent_name": "echo"},
            "b": {"agent_name": "echo", "depends_on": ["a"]},
            "c": {"agent_name": "echo", "depends_on": ["a"]},
            "d": {"agent_name": "echo", "depends_on": ["b", "c"], "timeout_ms": 2000},
        },
        "variables": {"v": 1},
    },
]


def register(store: EventStore, name: str = "echo") -> UUID:
    return register_agent(store, RegisterAgent(name=name, url="http://a"), META).aggregate.id


def create(store: EventStore, name: str = "flow", definition: int = 0) -> Workflow:
    command = CreateWorkflow(name=name, definition=DEFINITIONS[definition])
    return create_workflow(store, command, META).aggregate


def test_agents_are_looked_up_on_the_write_side_without_projections(runtime: Runtime) -> None:
    store = runtime.store
    agent_id = register(store)
    assert create(store).current_version == 1  # no projector has run

    update_agent(store, UpdateAgent(agent_id=agent_id, changes={}, status="inactive"), META)
    with pytest.raises(InvalidInput, match="agent 'echo' is inactive"):
        create(store, "second")
    delete_agent(store, DeleteAgent(agent_id=agent_id), META)
    with pytest.raises(InvalidInput, match="no agent named 'echo' is registered"):
        create(store, "second")
    register(store)  # a new agent takes the freed name
    assert create(store, "second").current_version == 1


def test_every_versions_plan_is_kept_for_runs_of_older_versions(runtime: Runtime) -> None:
    store = runtime.store
    register(store)
    workflow = create(store)
    for version in (1, 2):
        command = UpdateWorkflow(workflow_id=workflow.id, changes=DEFINITIONS[version])
        update_workflow(store, command, META)
    loaded = store.get(Workflow, workflow.id)
    assert loaded.current_version == 3
    assert loaded.plan_of(1).step_ids == ("a",)
    assert loaded.plan_of(2).step("b").depends_on == ("a",)
    assert loaded.plan_of(3).step("d").depends_on == ("b", "c")
    assert loaded.plan_of(3).variables == {"v": 1}


def test_of_concurrent_creations_of_one_name_exactly_one_succeeds(runtime: Runtime) -> None:
    register(runtime.store)
    contenders = 5
    barrier = threading.Barrier(contenders)
    results: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            create(runtime.store)
            results.append("created")
        except NameTaken:
            results.append("taken")

    threads = [threading.Thread(target=attempt) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["created"] + ["taken"] * (contenders - 1)


def test_a_writer_holding_a_stale_version_gets_a_conflict(runtime: Runtime) -> None:
    store = runtime.store
    register(store)
    workflow_id = create(store).id
    first, second = store.get(Workflow, workflow_id), store.get(Workflow, workflow_id)
    first.update(DEFINITIONS[1], {"echo": "active"})
    second.update(DEFINITIONS[2], {"echo": "active"})
    store.record(first, metadata=META)
    with pytest.raises(ConcurrentModification):
        store.record(second, metadata=META)
    assert store.get(Workflow, workflow_id).plan_of().step_ids == ("a", "b")


workflow_commands = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(["one", "two"]), st.integers(0, 2)),
        st.tuples(st.just("update"), st.integers(0, 5), st.integers(0, 2)),
        st.tuples(st.just("describe"), st.integers(0, 5), st.none() | st.text(max_size=5)),
        st.tuples(st.sampled_from(["activate", "deactivate", "delete"]), st.integers(0, 5)),
    ),
    max_size=15,
)


def run_commands(store: EventStore, commands: Sequence[tuple[Any, ...]]) -> None:
    created: list[UUID] = []
    for command in commands:
        try:
            if command[0] == "create":
                created.append(create(store, command[1], command[2]).id)
                continue
            if not created:
                continue
            workflow_id = created[command[1] % len(created)]
            if command[0] == "update":
                changes = DEFINITIONS[command[2]]
            elif command[0] == "describe":
                changes = {"description": command[2]}
            else:
                changes = {}
            if command[0] == "delete":
                delete_workflow(store, DeleteWorkflow(workflow_id=workflow_id), META)
            else:
                status = {"activate": "active", "deactivate": "inactive"}.get(command[0])
                update_workflow(
                    store,
                    UpdateWorkflow(workflow_id=workflow_id, changes=changes, status=status),
                    META,
                )
        except DomainError:
            pass


def folded(store: EventStore) -> dict[str, list[dict[str, Any]]]:
    """The expected read tables: every workflow rebuilt from its events."""
    ids = {
        n.originator_id
        for n in store.read(None, 1_000_000)
        if n.topic.startswith("flowledger.domain.workflows:")
    }
    rows: dict[str, list[dict[str, Any]]] = {"workflows": [], "versions": [], "steps": []}
    for workflow_id in ids:
        workflow = store.get(Workflow, workflow_id)
        rows["workflows"].append(
            {
                "id": workflow.id,
                "name": workflow.name,
                "description": workflow.description,
                "status": workflow.status,
                "version": workflow.current_version,
                "definition": workflow.definition,
                "created_at": workflow.created_on,
                "updated_at": workflow.modified_on,
            }
        )
        for number, version in workflow.versions.items():
            rows["versions"].append(
                {"workflow_id": workflow.id, "version": number, "definition": version.definition}
            )
            for order, step in enumerate(workflow.plan_of(number).steps):
                rows["steps"].append(
                    {
                        "workflow_id": workflow.id,
                        "version": number,
                        "step_id": step.step_id,
                        "step_order": order,
                        "depends_on": list(step.depends_on),
                    }
                )
    return {name: sorted(table, key=repr) for name, table in rows.items()}


COLUMNS = {
    "workflows": (
        workflows,
        ("id", "name", "description", "status", "version", "definition", "created_at",
         "updated_at"),
    ),
    "versions": (workflow_versions, ("workflow_id", "version", "definition")),
    "steps": (workflow_steps, ("workflow_id", "version", "step_id", "step_order", "depends_on")),
}  # fmt: skip


def tables(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """The read tables, in the shape of :func:`folded`."""
    found = {}
    with runtime.engine.connect() as conn:
        for name, (table, columns) in COLUMNS.items():
            rows = conn.execute(select(*(table.c[c] for c in columns))).mappings().all()
            found[name] = sorted((dict(r) for r in rows), key=repr)
    return found


def project(runtime: Runtime, batch_size: int) -> None:
    projector = Projector(WorkflowsProjection(), runtime.store, runtime.engine)
    Follower(runtime.store, projector, batch_size=batch_size).catch_up()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(commands=workflow_commands, batch_size=st.integers(1, 6))
def test_the_read_tables_are_the_fold_of_the_events_and_a_rebuild_gives_them_again(
    runtime: Runtime, commands: list[tuple[Any, ...]], batch_size: int
) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(
            text("TRUNCATE flowledger_events, workflows, workflow_versions, workflow_steps")
        )
        conn.execute(
            text("DELETE FROM workflows_tracking WHERE application_name <> '__migration__'")
        )
    runtime.store.forget_cached()  # the events it had cached are gone
    register(runtime.store)
    run_commands(runtime.store, commands)

    project(runtime, batch_size)
    expected = folded(runtime.store)
    assert tables(runtime) == expected

    Projector(WorkflowsProjection(), runtime.store, runtime.engine).reset()
    assert tables(runtime) == {"workflows": [], "versions": [], "steps": []}
    project(runtime, batch_size=500)
    assert tables(runtime) == expected
