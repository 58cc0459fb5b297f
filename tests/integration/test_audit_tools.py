"""The audit trail proven against the event store: ``audit verify`` passes on a busy database
and names every tampered row; ``audit replay`` shows an entity's history; retention deletes
old rows and verify accepts their absence; ``flowledger dev``'s first admin key."""

from __future__ import annotations

import io
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, text, update

from flowledger.auditing.replay import replay_entity
from flowledger.auditing.verify import verify_audit_log
from flowledger.cli.main import build_parser
from flowledger.commands.agents import (
    DeleteAgent,
    RegisterAgent,
    UpdateAgent,
    delete_agent,
    register_agent,
    update_agent,
)
from flowledger.commands.api_keys import IssueApiKey, RevokeApiKey, issue_api_key, revoke_api_key
from flowledger.domain.errors import NotFound
from flowledger.eventlog.follower import Follower
from flowledger.eventlog.store import EventMetadata
from flowledger.projections.audit import AuditLogProjection, purge_expired
from flowledger.projections.projector import Projector
from flowledger.projections.registry import all_projections
from flowledger.projections.tables import audit_log
from flowledger.runtime.process import Runtime
from flowledger.runtime.workers import run_audit_retention
from flowledger.security.bootstrap import ADMIN_KEY_FILE, ensure_dev_admin_key, key_works
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
META = EventMetadata(actor="key:tester", correlation_id="corr-1")


def project(runtime: Runtime) -> None:
    for projection in all_projections():
        Follower(runtime.store, Projector(projection, runtime.store, runtime.engine)).catch_up()


def busy(runtime: Runtime, agents: int = 20) -> list[UUID]:
    """Many changes of several kinds, by several actors."""
    ids = []
    for n in range(agents):
        meta = EventMetadata(actor=f"key:{n % 3}", correlation_id=f"c{n}")
        agent = register_agent(
            runtime.store,
            RegisterAgent(
                name=f"agent-{n}",
                url=f"http://a{n}",
                auth_type="bearer",
                auth_config={"token": f"secret-{n}"},
            ),
            meta,
        ).aggregate
        ids.append(agent.id)
        update_agent(
            runtime.store, UpdateAgent(agent_id=agent.id, changes={"timeout_ms": 1000 + n}), meta
        )
        if n % 4 == 0:
            delete_agent(runtime.store, DeleteAgent(agent_id=agent.id), meta)
        if n % 5 == 0:
            key = issue_api_key(runtime.store, IssueApiKey(name=f"k{n}", role="viewer"), meta)
            revoke_api_key(runtime.store, RevokeApiKey(key_id=key.aggregate.id), meta)
    project(runtime)
    return ids


def verify(runtime: Runtime, *, now: datetime | None = None, retention: int | None = 365,
           batch_size: int = 1000) -> Any:  # fmt: skip
    return verify_audit_log(
        runtime.store,
        runtime.engine,
        now=now or datetime.now(UTC),
        retention_days=retention,
        batch_size=batch_size,
    )


def cli(runtime: Runtime, *argv: str) -> tuple[int, str]:
    from flowledger.cli.audit import run_audit  # noqa: PLC0415

    args = build_parser(runtime.settings).parse_args(["audit", *argv])
    out = io.StringIO()
    return run_audit(runtime.settings, args, out), out.getvalue()


def test_verify_passes_on_a_busy_database_in_any_batch_size(runtime: Runtime) -> None:
    busy(runtime)
    for batch_size in (1, 7, 1000):
        report = verify(runtime, batch_size=batch_size)
        assert report.ok, report.discrepancies
        assert report.events == report.matching == 53
    code, out = cli(runtime, "verify")
    assert code == 0 and out.endswith("audit verify: OK\n")


def test_verify_names_every_missing_altered_and_forged_row(runtime: Runtime) -> None:
    busy(runtime, agents=6)
    with runtime.engine.begin() as conn:
        positions = list(conn.execute(select(audit_log.c.position).order_by("position")).scalars())
        missing, altered, relabelled = positions[1], positions[3], positions[5]
        actor = conn.execute(
            select(audit_log.c.actor).where(audit_log.c.position == relabelled)
        ).scalar_one()
        conn.execute(delete(audit_log).where(audit_log.c.position == missing))
        conn.execute(
            update(audit_log)
            .where(audit_log.c.position == altered)
            .values(changes={"changes": {"timeout_ms": 1}})
        )
        conn.execute(
            update(audit_log).where(audit_log.c.position == relabelled).values(actor="innocent")
        )
        internal = next(p for p in range(1, positions[-1]) if p not in positions)
        forged_row = (
            conn.execute(select(audit_log).where(audit_log.c.position == positions[0]))
            .mappings()
            .one()
        )
        for forged in (internal, positions[-1] + 1000):
            conn.execute(insert(audit_log).values({**forged_row, "position": forged}))
    report = verify(runtime)
    found = {(d.position, d.kind) for d in report.discrepancies}
    assert found == {
        (missing, "missing"),
        (altered, "altered"),
        (relabelled, "altered"),
        (internal, "unexpected"),
        (positions[-1] + 1000, "unexpected"),
    }
    relabel = next(d for d in report.discrepancies if d.position == relabelled)
    assert relabel.detail == f"actor: stored 'innocent', expected {actor!r}"
    code, out = cli(runtime, "verify")
    assert code == 1
    assert f"ALTERED     position {relabelled}: actor" in out
    assert f"MISSING     position {missing}:" in out
    assert out.endswith("audit verify: FAILED, 5 discrepancies\n")


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_verify_reports_exactly_the_rows_that_were_tampered_with(
    runtime: Runtime, data: st.DataObject
) -> None:
    with runtime.engine.connect() as conn:
        if not conn.execute(select(func.count()).select_from(audit_log)).scalar_one():
            busy(runtime, agents=4)
        positions = list(conn.execute(select(audit_log.c.position).order_by("position")).scalars())
    how_to_tamper = st.sampled_from(["delete", "actor", "action"])
    tampered = data.draw(st.dictionaries(st.sampled_from(positions), how_to_tamper))
    with runtime.engine.begin() as conn:
        for position, how in tampered.items():
            row = audit_log.c.position == position
            if how == "delete":
                conn.execute(delete(audit_log).where(row))
            else:
                conn.execute(update(audit_log).where(row).values({how: "forged"}))
    try:
        report = verify(runtime, batch_size=data.draw(st.integers(1, 50)))
        expected = {(p, "missing" if how == "delete" else "altered") for p, how in tampered.items()}
        assert {(d.position, d.kind) for d in report.discrepancies} == expected
    finally:  # rebuild the audit log from the event store for the next example
        projector = Projector(AuditLogProjection(), runtime.store, runtime.engine)
        projector.reset()
        Follower(runtime.store, projector).catch_up()
    assert verify(runtime).ok


def test_retention_purges_old_rows_and_verify_accepts_only_their_absence(
    runtime: Runtime,
) -> None:
    busy(runtime, agents=3)
    now = datetime.now(UTC)
    assert purge_expired(runtime.engine, now - timedelta(days=90)) == 0
    deleted = purge_expired(runtime.engine, now + timedelta(minutes=1), batch_size=4)
    assert deleted > 4
    later = now + timedelta(days=100)
    report = verify(runtime, now=later, retention=90)
    assert report.ok and report.purged == deleted and report.matching == 0
    missing = verify(runtime, now=later, retention=365)  # a longer retention wants the rows
    assert {d.kind for d in missing.discrepancies} == {"missing"}
    assert not verify(runtime, retention=None).ok


def test_the_projections_worker_purges_rows_past_the_retention(runtime: Runtime) -> None:
    busy(runtime, agents=2)
    with runtime.engine.begin() as conn:
        old = conn.execute(select(func.min(audit_log.c.position))).scalar_one()
        conn.execute(
            update(audit_log)
            .where(audit_log.c.position == old)
            .values(occurred_at=datetime.now(UTC) - timedelta(days=91))
        )
    rt = Runtime(
        settings=runtime.settings.with_overrides(
            extra={
                "FLOWLEDGER_AUDIT_RETENTION_DAYS": "90",
                "FLOWLEDGER_AUDIT_PURGE_INTERVAL": "3600",
            }
        ),
        database=runtime.database,
        store=runtime.store,
        engine=runtime.engine,
        async_engine=runtime.async_engine,
    )
    stop = threading.Event()
    purger = threading.Thread(target=run_audit_retention, args=(rt, stop), daemon=True)
    purger.start()
    try:

        def oldest_position() -> int | None:
            with runtime.engine.connect() as conn:
                oldest: int | None = conn.execute(
                    select(func.min(audit_log.c.position))
                ).scalar_one()
                return oldest

        eventually(
            oldest_position,
            lambda oldest: oldest != old,
            what=f"the purger to remove the row at {old}",
            timeout_s=10,
        )
    finally:
        stop.set()
        purger.join(timeout=10)
    with runtime.engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.position == old)
            ).scalar_one()
            == 0
        )
    assert not purger.is_alive()


def test_replay_shows_each_version_and_the_state_after_it(runtime: Runtime) -> None:
    store = runtime.store
    agent = register_agent(
        store,
        RegisterAgent(
            name="echo", url="http://a", auth_type="bearer", auth_config={"token": "t0p"}
        ),
        META,
    ).aggregate
    update_agent(store, UpdateAgent(agent_id=agent.id, changes={"timeout_ms": 5000}), META)
    update_agent(store, UpdateAgent(agent_id=agent.id, changes={}, status="inactive"),
                 EventMetadata(actor="jwt:bob", correlation_id="c2"))  # fmt: skip
    delete_agent(store, DeleteAgent(agent_id=agent.id), META)

    history = replay_entity(store, "agent", agent.id)
    assert [(v.version, v.event_type, v.action, v.actor) for v in history] == [
        (1, "AgentRegistered", "create", "key:tester"),
        (2, "AgentUpdated", "update", "key:tester"),
        (3, "AgentDeactivated", "deactivate", "jwt:bob"),
        (4, "AgentDeleted", "delete", "key:tester"),
    ]
    assert history[0].state["auth_config"] == {"token": "********"}
    assert history[0].state["timeout_ms"] == 30000 and history[1].state["timeout_ms"] == 5000
    assert [v.state["status"] for v in history] == ["active", "active", "inactive", "deleted"]
    assert history[1].changes == {
        "changes": {"timeout_ms": 5000},
        "previous": {"timeout_ms": 30000},
    }
    positions = [v.position for v in history]
    assert positions == sorted(positions) and None not in positions

    until = replay_entity(store, "agent", agent.id, until=history[1].occurred_at)
    assert [v.version for v in until] == [1, 2]
    with pytest.raises(NotFound):
        replay_entity(store, "workflow", agent.id)
    with pytest.raises(NotFound):
        replay_entity(store, "agent", UUID(int=1))

    code, out = cli(
        runtime, "replay", "agent", str(agent.id), "--until", history[2].occurred_at.isoformat()
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"agent {agent.id}: 3 versions until {history[2].occurred_at.isoformat()}"
    assert lines[7].startswith("v3  ") and "AgentDeactivated (deactivate)  by jwt:bob" in lines[7]
    assert '"status": "inactive"' in lines[9] and "t0p" not in out
    code, out = cli(runtime, "replay", "agent", str(agent.id), "--json")
    assert code == 0 and '"event_type": "AgentDeleted"' in out
    assert cli(runtime, "replay", "api_key", str(agent.id))[0] == 1


def test_dev_creates_an_admin_key_once_and_keeps_it_private(
    runtime: Runtime, tmp_path: Path
) -> None:
    first = ensure_dev_admin_key(runtime, tmp_path)
    assert first.created and first.path == tmp_path / ADMIN_KEY_FILE
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert first.path.read_text().strip() == first.key
    assert key_works(runtime.engine, first.key, datetime.now(UTC))
    again = ensure_dev_admin_key(runtime, tmp_path)
    assert (again.key, again.created) == (first.key, False)
    with runtime.engine.begin() as conn:
        conn.execute(text("UPDATE api_keys SET revoked_at = now()"))
    replaced = ensure_dev_admin_key(runtime, tmp_path)
    assert replaced.created and replaced.key != first.key
    assert replaced.path.read_text().strip() == replaced.key
