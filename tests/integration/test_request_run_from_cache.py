"""A run requested on the event loop (``request_run_from_cache``, what POST .../execute tries
first): recorded without a worker thread when the cache holds what it reads; otherwise it
records nothing and answers None, so that ``request_run`` decides in a thread (a read not
cached, an idempotency key, a refusal, a read another process moved on)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar
from uuid import UUID

import pytest
from sqlalchemy import text

from bench.catalogue import echo_chain
from flowledger.commands.runs import (
    RequestedRun,
    RequestRun,
    request_run,
    request_run_from_cache,
)
from flowledger.commands.workflows import UpdateWorkflow, update_workflow
from flowledger.domain.errors import Conflict
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.settings import EventStoreSettings
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.writes import run_command
from flowledger.runtime.database import Database
from flowledger.runtime.process import Runtime

pytestmark = pytest.mark.integration
META = EventMetadata.system("tester")
T = TypeVar("T")


class NoThreads(ThreadPoolExecutor):
    """The loop's default executor in these tests: any ``to_thread`` fails the test."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        raise AssertionError(f"a worker thread was asked to run {fn!r}")


def on_loop(
    store: EventStore, command: RequestRun, *, threads: bool = False
) -> RequestedRun | None:
    async def main() -> RequestedRun | None:
        if not threads:
            asyncio.get_running_loop().set_default_executor(NoThreads())
        return await request_run_from_cache(store, command, META)

    return asyncio.run(main())


def events_of(runtime: Runtime, aggregate_id: UUID) -> list[str]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT topic FROM flowledger_events WHERE originator_id = :id "
                "ORDER BY originator_version"
            ),
            {"id": aggregate_id},
        )
        return [str(row[0]).rsplit(":", 1)[-1] for row in rows]


def head(runtime: Runtime) -> int:
    return runtime.store.head()


@pytest.fixture
def second_process(database: Database, runtime: Runtime) -> Iterator[EventStore]:
    """Another process's event store on the same database (its own cache and writer)."""
    other = EventStore(database, pool_size=2, settings=EventStoreSettings())
    yield other
    other.close()


@pytest.fixture
def cached_workflow(runtime: Runtime) -> UUID:
    """A workflow this process has requested a run of (so it and its agent are cached)."""
    workflow_id = echo_chain(runtime.store, f"from-cache-{id(runtime)}", 2)
    request_run(runtime.store, RequestRun(workflow_id=workflow_id, input_data={}), META)
    return workflow_id


def test_a_run_on_a_cached_workflow_is_recorded_on_the_loop_without_a_thread(
    runtime: Runtime, cached_workflow: UUID
) -> None:
    command = RequestRun(workflow_id=cached_workflow, input_data={"text": "x"})

    accepted = on_loop(runtime.store, command)

    assert accepted is not None and not accepted.replayed
    assert accepted.position == head(runtime)
    assert events_of(runtime, accepted.aggregate.id) == ["Run.Requested"]
    assert accepted.aggregate.input_data == {"text": "x"}


def test_a_workflow_not_cached_in_this_process_is_left_to_the_thread(
    runtime: Runtime, cached_workflow: UUID, second_process: EventStore
) -> None:
    command = RequestRun(workflow_id=cached_workflow, input_data={})
    before = head(runtime)

    assert on_loop(second_process, command) is None
    assert head(runtime) == before, "nothing recorded"
    assert request_run(second_process, command, META).position == head(runtime)
    assert on_loop(second_process, command) is not None, "cached by the thread's decision"


def test_a_workflow_another_process_deactivated_is_decided_again_in_the_thread(
    runtime: Runtime, cached_workflow: UUID, second_process: EventStore
) -> None:
    command = RequestRun(workflow_id=cached_workflow, input_data={})
    update_workflow(
        second_process,
        UpdateWorkflow(workflow_id=cached_workflow, changes={}, status="inactive"),
        META,
    )
    before = head(runtime)

    # (the stale workflow is brought up to date in a thread before it answers)
    assert on_loop(runtime.store, command, threads=True) is None, "its stale read refused it"
    assert head(runtime) == before, "nothing recorded"
    cached = runtime.store.cached(Workflow, cached_workflow)
    assert cached is not None and cached.status == "inactive", "brought up to date"
    with pytest.raises(Conflict, match="inactive"):
        request_run(runtime.store, command, META)
    assert on_loop(runtime.store, command) is None, "the cache has it inactive now"


def test_an_execute_the_loop_cannot_settle_is_decided_in_a_thread_that_may_read_the_store(
    runtime: Runtime, cached_workflow: UUID, second_process: EventStore
) -> None:
    """What POST .../execute does: the loop gives up (nothing cached in this store), and the
    worker thread then loads what it needs (the loop's cache-only reading does not follow it
    into the thread)."""
    command = RequestRun(workflow_id=cached_workflow, input_data={})

    async def execute() -> RequestedRun:
        return await run_command(
            request_run, second_process, command, META, on_loop=request_run_from_cache
        )

    accepted = asyncio.run(execute())

    assert accepted.position == head(runtime)
    assert events_of(runtime, accepted.aggregate.id) == ["Run.Requested"]


def test_refusals_and_idempotency_keys_are_left_to_the_thread(
    runtime: Runtime, cached_workflow: UUID
) -> None:
    before = head(runtime)
    unknown_variable = RequestRun(workflow_id=cached_workflow, input_data={}, variables={"nope": 1})
    keyed = RequestRun(workflow_id=cached_workflow, input_data={}, idempotency_key="k-1")

    assert on_loop(runtime.store, unknown_variable) is None
    assert on_loop(runtime.store, keyed) is None
    assert head(runtime) == before, "nothing recorded"
