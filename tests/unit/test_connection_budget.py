"""The connection budget (ADR 0013): what each process may hold adds up to a number known in
advance, every pool gets a connection, and every connection says whose it is."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.runtime import connections
from flowledger.runtime.connections import (
    API,
    COMMAND_BUDGET,
    IN_PROCESS,
    LISTEN_CONNECTIONS,
    ConnectionSettings,
    PoolShares,
    ProcessRole,
    command,
    owner_of,
    session_options,
    split,
)
from flowledger.runtime.settings import Settings
from flowledger.runtime.workers import WORKERS

pytestmark = pytest.mark.unit

shares = st.builds(PoolShares, st.integers(0, 8), st.integers(0, 8), st.integers(0, 8))


@given(connections_=st.integers(3, 500), weights=shares)
def test_three_pools_share_every_connection_and_each_gets_one(
    connections_: int, weights: PoolShares
) -> None:
    sizes = split(connections_, weights)
    assert sum(sizes) == connections_
    assert min(sizes) >= 1


@given(connections_=st.integers(3, 500), weights=shares)
def test_a_heavier_pool_never_gets_fewer_connections(
    connections_: int, weights: PoolShares
) -> None:
    sizes = split(connections_, weights)
    by_weight = [weights.store, weights.sync, weights.async_]
    for i in range(3):
        for j in range(3):
            if by_weight[i] > by_weight[j]:
                assert sizes[i] >= sizes[j]


def test_a_pool_the_role_hardly_uses_gets_one_connection() -> None:
    assert split(10, PoolShares(store=1, sync=0, async_=1)) == (5, 1, 4)
    assert split(8, PoolShares(store=0, sync=0, async_=1)) == (1, 1, 6)
    assert split(3, PoolShares(store=5, sync=0, async_=0)) == (1, 1, 1)


@given(pool_size=st.integers(5, 500))
def test_every_server_process_holds_exactly_its_pool_size_at_most(pool_size: int) -> None:
    roles = [API, IN_PROCESS, *(kind.role for kind in WORKERS.values())]
    for role in roles:
        budget = role.budget(pool_size)
        assert budget.total == pool_size, role
        assert budget.listen == LISTEN_CONNECTIONS
        assert min(budget.store, budget.sync, budget.async_) >= 1


def test_an_operators_command_holds_a_small_fixed_budget_whatever_the_pool_size() -> None:
    assert command("projections rebuild").budget(10) == COMMAND_BUDGET
    assert command("audit verify").budget(200) == COMMAND_BUDGET
    assert COMMAND_BUDGET.total == 5


def test_each_worker_kind_weighs_the_pools_it_uses() -> None:
    budgets = {name: kind.role.budget(10) for name, kind in WORKERS.items()}
    assert budgets["projections"].sync > budgets["projections"].async_
    assert budgets["executor"].store > budgets["executor"].sync
    assert budgets["webhooks"].async_ > budgets["webhooks"].store
    assert API.budget(10).async_ > API.budget(10).sync
    assert {kind.role.name for kind in WORKERS.values()} == {f"worker {n}" for n in WORKERS}


def test_a_server_for_n_processes_keeps_the_reserved_connections_free() -> None:
    settings = ConnectionSettings.from_settings(
        Settings(db_pool_size=12, extra={"FLOWLEDGER_DB_RESERVED_CONNECTIONS": "7"})
    )
    assert settings.server_connections(5) == 5 * 12 + 7


def test_the_connection_settings_are_read_from_the_environment() -> None:
    settings = ConnectionSettings.from_settings(
        Settings(
            db_pool_size=6,
            extra={"FLOWLEDGER_DB_IDLE_TIMEOUT": "0", "FLOWLEDGER_DB_RETRY": "2.5"},
        )
    )
    assert (settings.pool_size, settings.idle_timeout_s, settings.retry_s) == (6, 0.0, 2.5)
    assert ConnectionSettings.from_settings(Settings()) == ConnectionSettings()


@pytest.mark.parametrize("role", [API, command("projections rebuild"), ProcessRole("worker x")])
def test_every_connection_names_the_role_and_pid_of_its_process(role: ProcessRole) -> None:
    previous = connections.process_role()
    connections.set_process_role(role)
    try:
        plain = connections.application_name()
        listening = connections.application_name("listen flowledger_webhook_deliveries")
    finally:
        connections.set_process_role(previous)
    assert plain == f"flowledger {role.name} pid={os.getpid()}"
    assert len(listening) <= 63  # PostgreSQL keeps no more
    for name in (plain, listening):
        owner = owner_of(name)
        assert owner is not None
        assert (owner.role, owner.pid) == (role.name, os.getpid())


@pytest.mark.parametrize("name", [None, "", "psql", "flowledger", "flowledger api", "pgAdmin"])
def test_a_connection_of_someone_else_has_no_owner(name: str | None) -> None:
    assert owner_of(name) is None


def test_session_options_close_idle_sessions_only_when_asked_and_keep_tcp_alive() -> None:
    assert "idle_session_timeout" not in session_options()
    assert "-c idle_session_timeout=1500" in session_options(idle_timeout_s=1.5)
    assert "client_connection_check_interval" in session_options()
    assert "tcp_keepalives_idle" in session_options(tcp=True)
    assert "tcp_keepalives_idle" not in session_options(tcp=False)


def test_the_readme_shows_each_process_budget_as_the_code_shares_it() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Connection budget", 1)[1].split("###", 1)[0]
    row = r"^\s*\| `?(API|worker \w+)[^|]*" + r"\| (\d+) " * 5 + r"\|$"
    rows = re.findall(row, section, re.MULTILINE)
    shown = {role: tuple(int(n) for n in numbers) for role, *numbers in rows}
    roles = {"API": API, **{kind.role.name: kind.role for kind in WORKERS.values()}}
    assert set(shown) == set(roles)
    for name, role in roles.items():
        budget = role.budget(ConnectionSettings().pool_size)
        expected = (budget.store, budget.sync, budget.async_, budget.listen, budget.total)
        assert shown[name] == expected, name
