"""The executor's run locks (:class:`RunLocks`) against a real PostgreSQL: one holder of each
run among executors; many asked for at once go in one statement; a lost connection drops them
all (and says so); a lock whose asker went away meanwhile is given back, not kept."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest

from flowledger.executor import run_locks
from flowledger.executor.run_locks import RunLocks, lock_key
from flowledger.runtime.database import Database
from tests.support.polling import eventually_async


class Executors:
    """Two executors' locks on one database, and what each was told of a lost connection."""

    def __init__(self, url: str) -> None:
        self.lost: list[BaseException] = []
        self.first = RunLocks(url, self._lost)
        self.second = RunLocks(url, self._lost)

    async def _lost(self, error: BaseException) -> None:
        self.lost.append(error)


def before_each_statement(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[Any], Awaitable[None]]
) -> None:
    """Every statement sent on a psycopg async connection first awaits ``before(query)``."""
    execute = psycopg.AsyncConnection.execute

    async def wrapped(self: psycopg.AsyncConnection[Any], query: Any, *args: Any, **kw: Any) -> Any:
        await before(query)
        return await execute(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", wrapped)


async def given_back(executors: Executors, run: uuid.UUID) -> None:
    """Wait until the second executor takes the run: the first gave its lock back."""
    await eventually_async(
        lambda: executors.second.lock(run), what="the lock given back by the first executor"
    )


@pytest.fixture
async def executors(pg_server: Database) -> AsyncIterator[Executors]:
    both = Executors(pg_server.libpq_url)
    yield both
    await both.first.close()
    await both.second.close()


async def test_a_run_is_held_by_one_executor_until_it_lets_go(executors: Executors) -> None:
    runs = [uuid.uuid4() for _ in range(20)]
    first = await asyncio.gather(*(executors.first.lock(run) for run in runs))
    second = await asyncio.gather(*(executors.second.lock(run) for run in runs))
    assert first == [True] * 20
    assert second == [False] * 20
    await asyncio.gather(*(executors.first.unlock(run) for run in runs[:5]))
    assert (
        await asyncio.gather(*(executors.second.lock(run) for run in runs))
        == [True] * 5 + [False] * 15
    )


async def test_an_executor_does_not_take_a_run_it_holds_a_second_time(
    executors: Executors,
) -> None:
    run = uuid.uuid4()
    assert await executors.first.lock(run)
    assert not await executors.first.lock(run)
    await executors.first.unlock(run)  # held once: one unlock frees it
    assert await executors.second.lock(run)


async def test_locks_asked_for_at_once_go_in_one_statement(
    executors: Executors, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []

    async def count(query: Any) -> None:
        statements.append(str(query))

    before_each_statement(monkeypatch, count)
    runs = [uuid.uuid4() for _ in range(50)]
    assert all(await asyncio.gather(*(executors.first.lock(run) for run in runs)))
    await asyncio.gather(*(executors.first.unlock(run) for run in runs))
    assert len(statements) == 2, statements
    assert all(await asyncio.gather(*(executors.second.lock(run) for run in runs)))


async def test_a_lost_connection_drops_every_lock_and_is_reported(
    executors: Executors, pg_server: Database
) -> None:
    held = uuid.uuid4()
    key = lock_key(held)
    assert await executors.first.lock(held)
    with psycopg.connect(pg_server.libpq_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND classid::bigint = %s AND objid::bigint = %s",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
        )
    # The next statement finds the connection gone: its lock is refused, the loss reported.
    assert not await executors.first.lock(uuid.uuid4())
    assert len(executors.lost) == 1
    assert isinstance(executors.lost[0], psycopg.Error)
    assert await executors.second.lock(held)  # the server let the lock go with the session
    assert await executors.first.lock(uuid.uuid4())  # and the first connects again


async def test_a_lock_taken_for_an_asker_that_went_away_is_given_back(
    executors: Executors,
) -> None:
    run = uuid.uuid4()
    asking = asyncio.create_task(executors.first.lock(run))
    await asyncio.sleep(0)  # it asked; the statement is on its way (connecting first)
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    await given_back(executors, run)


async def test_a_lock_answered_to_an_asker_cancelled_before_it_heard_is_given_back(
    executors: Executors, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4()
    asking = asyncio.create_task(executors.first.lock(run))
    answer = run_locks._settle

    def answer_then_cancel(*batch: Any) -> None:
        answer(*batch)
        asking.cancel()  # answered, but not yet resumed

    monkeypatch.setattr(run_locks, "_settle", answer_then_cancel)
    with pytest.raises(asyncio.CancelledError):
        await asking
    monkeypatch.setattr(run_locks, "_settle", answer)
    await given_back(executors, run)


async def test_any_failure_of_a_statement_answers_its_askers_and_is_reported(
    executors: Executors, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = uuid.uuid4()
    assert await executors.first.lock(held)

    async def fail(query: Any) -> None:
        raise RuntimeError("not a database error")

    before_each_statement(monkeypatch, fail)
    assert not await asyncio.wait_for(executors.first.lock(uuid.uuid4()), 5)
    assert [type(error) for error in executors.lost] == [RuntimeError]
    monkeypatch.undo()
    # The connection was dropped with its state unknown: its locks went with it.
    assert await executors.second.lock(held)


async def test_closing_answers_those_waiting_for_a_statement_out_now(
    executors: Executors, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = asyncio.Event()

    async def stall(query: Any) -> None:
        sent.set()
        await asyncio.sleep(30)

    before_each_statement(monkeypatch, stall)
    asking = asyncio.create_task(executors.first.lock(uuid.uuid4()))
    await asyncio.wait_for(sent.wait(), 5)
    await executors.first.close()
    assert await asyncio.wait_for(asking, 5) is False
