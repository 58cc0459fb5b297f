"""Properties of definition validation over random step graphs: it accepts exactly what a plain
reference check accepts (every reference exists, graphlib finds no cycle, every step is
reachable from the start step), its cycle errors name real cycles, and valid plans are
topologically ordered."""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger.domain.definitions import validated_plan

pytestmark = pytest.mark.unit

IDS = ["a", "b", "c", "d", "e", "f"]
REFERABLE = [*IDS, "missing"]
AGENTS = {"echo": "active"}
CYCLE = re.compile(r"^steps form a cycle: (?P<cycle>.+)$")


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=len(IDS), unique=True))
    # Mostly references to steps that exist, so that cycles and reachability get exercised.
    refs = st.sampled_from(ids) | st.sampled_from(REFERABLE)
    steps = {}
    for step_id in ids:
        step: dict[str, Any] = {"agent_name": "echo"}
        if draw(st.booleans()):
            step["next_step"] = draw(refs)
        if draw(st.booleans()):
            step["depends_on"] = draw(st.lists(refs, max_size=3, unique=True))
        steps[step_id] = step
    definition: dict[str, Any] = {"steps": steps}
    if draw(st.booleans()):
        definition["start_step"] = draw(refs)
    return definition


def edges(definition: dict[str, Any]) -> set[tuple[str, str]]:
    """(before, after) pairs, as written, missing steps included."""
    found = set()
    for step_id, step in definition["steps"].items():
        found.update((dep, step_id) for dep in step.get("depends_on", []))
        if "next_step" in step:
            found.add((step_id, step["next_step"]))
    return found


def reference_accepts(definition: dict[str, Any]) -> bool:
    steps = definition["steps"]
    start = definition.get("start_step")
    pairs = edges(definition)
    if any(x not in steps for pair in pairs for x in pair):
        return False
    if start is not None and start not in steps:
        return False
    graph: dict[str, set[str]] = {step_id: set() for step_id in steps}
    for before, after in pairs:
        graph[after].add(before)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return False
    if start is None:
        return True
    reached, pending = {start}, [start]
    while pending:
        current = pending.pop()
        for before, after in pairs:
            if before == current and after not in reached:
                reached.add(after)
                pending.append(after)
    return reached == set(steps)


@settings(max_examples=400)
@given(definitions())
def test_the_validator_accepts_exactly_what_the_reference_check_accepts(
    definition: dict[str, Any],
) -> None:
    plan, problems = validated_plan(definition, AGENTS)
    assert (plan is not None) == reference_accepts(definition), problems


@settings(max_examples=400)
@given(definitions())
def test_cycle_errors_name_real_cycles_and_every_cyclic_graph_gets_one(
    definition: dict[str, Any],
) -> None:
    _, problems = validated_plan(definition, AGENTS)
    pairs = edges(definition)
    cycles = [m["cycle"].split(" -> ") for p in problems if (m := CYCLE.match(p.message))]
    for cycle in cycles:
        assert cycle[0] == cycle[-1] and len(set(cycle)) == len(cycle) - 1
        assert all((a, b) in pairs for a, b in pairwise(cycle))
    steps = definition["steps"]
    graph: dict[str, set[str]] = {step_id: set() for step_id in steps}
    for before, after in pairs:
        if before in steps and after in steps:
            graph[after].add(before)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        assert cycles, "a graph with a cycle gets a cycle error"
    else:
        assert not cycles


@settings(max_examples=200)
@given(definitions())
def test_a_valid_plan_lists_each_step_after_everything_it_depends_on(
    definition: dict[str, Any],
) -> None:
    plan, _ = validated_plan(definition, AGENTS)
    if plan is None:
        return
    assert set(plan.step_ids) == set(definition["steps"])
    expected = {(before, after) for before, after in edges(definition)}
    actual = {(dep, s.step_id) for s in plan.steps for dep in s.depends_on}
    assert actual == expected
    seen: set[str] = set()
    for step in plan.steps:
        assert set(step.depends_on) <= seen
        seen.add(step.step_id)
