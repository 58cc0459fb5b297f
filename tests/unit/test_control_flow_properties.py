"""Properties of control flow over random nests of branches, maps and loops: each step runs the
number of times its place in the nest says (items, times iterations, times the branch taken), and
failures anywhere, each followed by a retry, end in the same counts with no succeeded step
instance run twice."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger.domain.mappings import resolve_in
from tests.support.runs import drive, started_run

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Call:
    id: str


@dataclass
class Branch:
    id: str
    taken: bool
    then: list[Any]
    otherwise: list[Any]
    join: str


@dataclass
class Map:
    id: str
    items: int
    parallel: int
    body: list[Any]


@dataclass
class Loop:
    id: str
    iterations: int
    body: list[Any]


def chains(depth: int, ids: itertools.count[int]) -> st.SearchStrategy[list[Any]]:
    return st.lists(nodes(depth, ids), min_size=1, max_size=3)


def nodes(depth: int, ids: itertools.count[int]) -> st.SearchStrategy[Any]:
    call = st.builds(lambda: Call(f"c{next(ids)}"))
    if depth >= 2:
        return call
    inner = st.deferred(lambda: chains(depth + 1, ids))
    branch = st.builds(
        lambda taken, then, otherwise: Branch(
            f"b{next(ids)}", taken, then, otherwise, f"j{next(ids)}"
        ),
        st.booleans(),
        inner,
        inner,
    )
    mapping = st.builds(
        lambda items, parallel, body: Map(f"m{next(ids)}", items, parallel, body),
        st.integers(0, 3),
        st.integers(1, 3),
        inner,
    )
    loop = st.builds(
        lambda iterations, body: Loop(f"l{next(ids)}", iterations, body),
        st.integers(1, 3),
        inner,
    )
    return st.one_of(call, call, branch, mapping, loop)


@st.composite
def nests(draw: st.DrawFn) -> list[Any]:
    return draw(chains(0, itertools.count()))


# ---------------------------------------------------------------------------- rendering


def render(chain: list[Any]) -> dict[str, Any]:
    """The steps of one block: the nodes one after the other."""
    steps: dict[str, Any] = {}
    exit_of_previous = None
    for node in chain:
        entry, exit_ = add(node, steps)
        if exit_of_previous is not None:
            steps[entry].setdefault("depends_on", []).append(exit_of_previous)
        exit_of_previous = exit_
    return steps


def add(node: Any, steps: dict[str, Any]) -> tuple[str, str]:
    """Add a node's steps to a block; its entry and exit step ids."""
    if isinstance(node, Call):
        steps[node.id] = {"agent_name": "echo", "input_mapping": {"at": node.id}}
        return node.id, node.id
    if isinstance(node, Branch):
        steps[node.id] = {"type": "if", "condition": f"`{str(node.taken).lower()}`"}
        then = render(node.then)
        otherwise = render(node.otherwise)
        steps.update(then)
        steps.update(otherwise)
        steps[node.id]["then"] = first(then)
        steps[node.id]["else"] = first(otherwise)
        steps[node.join] = {"agent_name": "echo", "depends_on": [last(then), last(otherwise)]}
        return node.id, node.join
    if isinstance(node, Map):
        steps[node.id] = {
            "type": "foreach",
            "items": f"`{list(range(node.items))}`",
            "max_parallel": node.parallel,
            "steps": render(node.body),
        }
        return node.id, node.id
    assert isinstance(node, Loop)
    steps[node.id] = {
        "type": "do_while",
        "while": f"iteration < `{node.iterations}`",
        "steps": render(node.body),
    }
    return node.id, node.id


def first(steps: dict[str, Any]) -> str:
    return next(s for s, step in steps.items() if not step.get("depends_on"))


def last(steps: dict[str, Any]) -> str:
    needed = {d for step in steps.values() for d in step.get("depends_on", [])}
    return next(s for s in reversed(steps) if s not in needed)


def expected_calls(chain: list[Any], times: int = 1) -> Counter[str]:
    """How often each agent step must be called."""
    counts: Counter[str] = Counter()
    for node in chain:
        if isinstance(node, Call):
            counts[node.id] += times
        elif isinstance(node, Branch):
            counts += expected_calls(node.then, times if node.taken else 0)
            counts += expected_calls(node.otherwise, 0 if node.taken else times)
            counts[node.join] += times
        elif isinstance(node, Map):
            counts += expected_calls(node.body, times * node.items)
        else:
            counts += expected_calls(node.body, times * node.iterations)
    return +counts


# ---------------------------------------------------------------------------- properties


@settings(max_examples=100, deadline=None)
@given(nests())
def test_every_step_runs_as_many_times_as_its_place_in_the_nest_says(chain: list[Any]) -> None:
    run = started_run({"steps": render(chain)})
    calls = drive(run, NOW)
    assert run.status == "SUCCEEDED", run.error
    assert calls == expected_calls(chain)


@settings(max_examples=60, deadline=None)
@given(nests(), st.lists(st.booleans(), min_size=1, max_size=30))
def test_failures_and_retries_anywhere_end_with_each_instance_succeeding_once(
    chain: list[Any], fails: list[bool]
) -> None:
    run = started_run({"steps": render(chain)})
    doomed = iter(fails)
    failed_once: set[str] = set()
    started: Counter[str] = Counter()
    for _ in range(2000):
        run.advance(NOW)
        if run.status == "FAILED":
            run.retry()
            run.start()
            continue
        if run.is_finished:
            break
        for key in run.ready_calls():
            step_input = resolve_in(run.plan_step(key).input_mapping, run.context(key))
            attempt = run.start_step(key, step_input)
            started[key.rpartition(".")[2]] += 1
            if key not in failed_once and next(doomed, False):
                failed_once.add(key)
                run.fail_attempt(key, attempt, "down", None)
                break  # the run fails at the next advance
            run.succeed_step(key, attempt, step_input)
    assert run.status == "SUCCEEDED", run.error
    failures = Counter(key.rpartition(".")[2] for key in failed_once)
    assert started == expected_calls(chain) + failures
    assert all(
        sum(a.outcome == "succeeded" for a in state.attempts) == 1
        for state in run.steps.values()
        if state.kind == "agent" and state.status == "SUCCEEDED"
    ), "no succeeded instance is run again"
