"""The kinds of step a definition may hold, their fields and their rules.

Every step may say ``type`` (``agent`` when absent), ``next_step`` and ``depends_on``. Then:

* ``agent`` — ``agent_name``, ``input_mapping``, ``timeout_ms``, ``retry_config``: one call.
* ``if`` — ``condition`` (an expression), ``then`` and ``else``: the steps (of the same block)
  each outcome leads to. Steps of the outcome not taken end SKIPPED, and so does what only
  they lead to.
* ``switch`` — ``expression``, ``cases`` (value → steps) and ``default`` (steps when no case
  matches).
* ``foreach`` — ``items`` (an expression or reference giving a list) and ``steps`` (a body,
  with its own optional ``start_step``) run once per item, ``max_parallel`` items at a time;
  its output is the list of the items' outputs, in order. ``continue_on_error``: a failed item
  outputs ``{"error": ...}`` instead of failing the map.
* ``do_while`` — ``steps`` run once, then again while ``while`` holds (or until ``until``
  does); its output is the last iteration's.
* ``wait`` — ``duration_ms`` or ``until`` (an RFC 3339 time, or a reference/expression).
* ``signal`` — waits for ``POST /runs/{id}/signals/<signal>`` (``signal`` defaults to the step
  id); its output is the data delivered. ``timeout_ms`` with ``default``: the data used when no
  signal came in time (without ``default`` the step fails then); ``schema``: a JSON Schema the
  data must satisfy.
* ``workflow`` — ``workflow_name`` (and ``version``; the current one by default) runs as a
  child run with ``input_mapping`` as its input; its output is the child's.

Expressions and references are checked by :mod:`flowledger.domain.expressions` and
:mod:`flowledger.domain.mappings`; the body of a ``foreach`` or ``do_while`` is checked like
the top level, by :mod:`flowledger.domain.definitions`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import referencing
from jsonschema import validators
from jsonschema.protocols import Validator

from flowledger.domain.agents import RetryPolicy, timeout_problems
from flowledger.domain.errors import FieldProblem
from flowledger.domain.expressions import Names, expression_problems
from flowledger.domain.mappings import is_reference, mapping_problems, value_problems
from flowledger.domain.plans import STEP_KINDS, StepKind

COMMON_FIELDS: Final = ("id", "type", "next_step", "depends_on")
KIND_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "agent": ("agent_name", "input_mapping", "timeout_ms", "retry_config"),
    "if": ("condition", "then", "else"),
    "switch": ("expression", "cases", "default"),
    "foreach": ("items", "steps", "start_step", "max_parallel", "continue_on_error"),
    "do_while": ("steps", "start_step", "while", "until"),
    "wait": ("duration_ms", "until"),
    "signal": ("signal", "timeout_ms", "default", "schema"),
    "workflow": ("workflow_name", "version", "input_mapping", "retry_config"),
}
ALL_FIELDS: Final = frozenset(COMMON_FIELDS).union(*KIND_FIELDS.values())
MAX_PARALLEL_ITEMS: Final = 100
WAIT_MAX_MS: Final = 86_400_000
SIGNAL_TIMEOUT_MS: Final = (1_000, 86_400_000)
IDENTIFIER: Final = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
# Retry overrides are checked field by field: the agent's own policy fills in the rest at run
# time, so the one cross-field rule (initial <= max delay) only applies to fields given together.
RETRY_OVERRIDE_BASE: Final = RetryPolicy(initial_delay_ms=100, max_delay_ms=600_000)


@dataclass(frozen=True)
class Place:
    """What a step may refer to where it stands in a definition."""

    block: Mapping[str, Any]
    """The steps of its block (branch targets must be among them)."""
    names: Names
    """What its expressions and mappings may read."""
    variables: Mapping[str, Any]
    agents: Mapping[str, str]
    """Name → status of each registered agent the definition uses."""
    workflows: Mapping[str, str] | None = None
    """Name → status of each workflow the definition calls (None: not checked)."""
    extra_locals: frozenset[str] = field(default_factory=frozenset)


def kind_of(step: Mapping[str, Any]) -> StepKind | None:
    """The step's kind (``agent`` without ``type``), or None if ``type`` is not one."""
    kind = step.get("type", "agent")
    return kind if kind in STEP_KINDS else None


def targets(value: object) -> list[str]:
    """Branch targets as written: one step id or a list of them (the valid ones)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def branch_targets(step: Mapping[str, Any]) -> list[str]:
    """Every step an ``if`` or ``switch`` may lead to (for the graph; unchecked)."""
    kind = step.get("type")
    if kind == "if":
        return targets(step.get("then")) + targets(step.get("else"))
    if kind == "switch":
        cases = step.get("cases")
        leads = [t for v in cases.values() for t in targets(v)] if isinstance(cases, dict) else []
        return leads + targets(step.get("default"))
    return []


def body_of(step: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A foreach's or do_while's body steps, if they are an object."""
    if step.get("type") in ("foreach", "do_while") and isinstance(step.get("steps"), Mapping):
        body: Mapping[str, Any] = step["steps"]
        return body
    return None


def field_problems(kind: StepKind, step: Mapping[str, Any], at: str) -> list[FieldProblem]:
    """Fields the step has that its kind does not."""
    allowed = set(COMMON_FIELDS) | set(KIND_FIELDS[kind])
    problems = []
    for key in step:
        if key in allowed:
            continue
        if key in ALL_FIELDS:
            problems.append(FieldProblem(f"{at}.{key}", f"is not a field of a {kind} step"))
        else:
            problems.append(FieldProblem(f"{at}.{key}", "is not a known step field"))
    return problems


def kind_problems(
    kind: StepKind, step_id: str, step: Mapping[str, Any], at: str, place: Place
) -> list[FieldProblem]:
    """The rules of the step's kind that need nothing but the step and its block (its body,
    if it has one, is checked by the caller)."""
    return _STATIC[kind](step_id, step, at, place)


def reading_problems(
    kind: StepKind, step: Mapping[str, Any], at: str, place: Place
) -> list[FieldProblem]:
    """Problems of what the step reads: mappings, conditions, items (``place.names`` says what
    is readable there; for a do_while's condition the caller adds its body)."""
    if kind in ("agent", "workflow"):
        return _mapping(step, at, place)
    field_name = _READS.get(kind)
    if field_name is None:
        return []
    if kind == "do_while":
        field_name = "while" if step.get("while") is not None else "until"
        if step.get(field_name) is None:
            return []  # reported by kind_problems
    if kind == "wait":
        field_name = "duration_ms" if step.get("duration_ms") is not None else "until"
        value = step.get(field_name)
        if not isinstance(value, str) or (field_name == "until" and parse_time(value)):
            return []  # a literal, checked by kind_problems
    return _condition(step.get(field_name), f"{at}.{field_name}", place)


_READS: Final = {
    "if": "condition",
    "switch": "expression",
    "foreach": "items",
    "do_while": "while",
    "wait": "duration_ms",
}


def _agent(step_id: str, step: Mapping[str, Any], at: str, place: Place) -> list[FieldProblem]:
    problems = _agent_problems(step.get("agent_name"), f"{at}.agent_name", place.agents)
    if step.get("timeout_ms") is not None:
        problems += timeout_problems(step["timeout_ms"], f"{at}.timeout_ms")
    return problems + _retry(step, at)


def _if(step_id: str, step: Mapping[str, Any], at: str, place: Place) -> list[FieldProblem]:
    problems = []
    if step.get("then") is None and step.get("else") is None:
        problems.append(FieldProblem(f"{at}.then", "an if needs then, else, or both"))
    for outcome in ("then", "else"):
        if step.get(outcome) is not None:
            problems += _target_problems(step_id, step[outcome], f"{at}.{outcome}", place)
    return problems


def _switch(step_id: str, step: Mapping[str, Any], at: str, place: Place) -> list[FieldProblem]:
    problems = []
    cases = step.get("cases")
    if not isinstance(cases, Mapping) or not cases:
        problems.append(FieldProblem(f"{at}.cases", "must be an object of values and steps"))
    else:
        for value, leads_to in cases.items():
            problems += _target_problems(step_id, leads_to, f"{at}.cases.{value}", place)
    if step.get("default") is not None:
        problems += _target_problems(step_id, step["default"], f"{at}.default", place)
    return problems


def _foreach(step_id: str, step: Mapping[str, Any], at: str, place: Place) -> list[FieldProblem]:
    problems = _body_problems(step, at)
    problems += _range(step.get("max_parallel"), f"{at}.max_parallel", 1, MAX_PARALLEL_ITEMS)
    flag = step.get("continue_on_error")
    if flag is not None and not isinstance(flag, bool):
        problems.append(FieldProblem(f"{at}.continue_on_error", "must be true or false"))
    return problems


def _do_while(step_id: str, step: Mapping[str, Any], at: str, place: Place) -> list[FieldProblem]:
    problems = _body_problems(step, at)
    given = [key for key in ("while", "until") if step.get(key) is not None]
    if len(given) != 1:
        problems.append(FieldProblem(f"{at}.while", "give exactly one of while and until"))
    return problems


def _wait(step_id: str, step: Mapping[str, Any], at: str, place: Place) -> list[FieldProblem]:
    given = [key for key in ("duration_ms", "until") if step.get(key) is not None]
    if len(given) != 1:
        return [FieldProblem(f"{at}.duration_ms", "give exactly one of duration_ms and until")]
    value = step[given[0]]
    where = f"{at}.{given[0]}"
    if given[0] == "duration_ms" and not isinstance(value, str):
        return _range(value, where, 0, WAIT_MAX_MS)
    if not isinstance(value, str):
        return [FieldProblem(where, "must be an RFC 3339 time, a reference or an expression")]
    moment = parse_time(value) if given[0] == "until" else None
    if moment is not None and moment.tzinfo is None:
        return [FieldProblem(where, "must name its time zone (Z or +hh:mm)")]
    return []


def _signal(step_id: str, step: Mapping[str, Any], at: str, place: Place) -> list[FieldProblem]:
    problems = []
    name = step.get("signal")
    if name is not None and (not isinstance(name, str) or not IDENTIFIER.match(name)):
        problems.append(FieldProblem(f"{at}.signal", "must be 1 to 100 letters, digits, _ or -"))
    low, high = SIGNAL_TIMEOUT_MS
    problems += _range(step.get("timeout_ms"), f"{at}.timeout_ms", low, high)
    if "default" in step and step.get("timeout_ms") is None:
        problems.append(
            FieldProblem(f"{at}.default", "is used when timeout_ms passes: give timeout_ms too")
        )
    schema = step.get("schema")
    if schema is not None:
        schema_problems = json_schema_problems(schema, f"{at}.schema")
        problems += schema_problems
        if not schema_problems and "default" in step:
            problems += data_problems(schema, step["default"], f"{at}.default")
    return problems


def _workflow(step_id: str, step: Mapping[str, Any], at: str, place: Place) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    name = step.get("workflow_name")
    where = f"{at}.workflow_name"
    if name is None:
        problems.append(FieldProblem(where, "is required"))
    elif not isinstance(name, str) or not name:
        problems.append(FieldProblem(where, "must be a workflow's name"))
    elif place.workflows is not None:
        status = place.workflows.get(name)
        if status is None:
            problems.append(FieldProblem(where, f"no workflow named {name!r} exists"))
        elif status != "active":
            problems.append(FieldProblem(where, f"workflow {name!r} is {status}"))
    problems += _range(step.get("version"), f"{at}.version", 1, 2_147_483_647)
    return problems + _retry(step, at)


_STATIC = {
    "agent": _agent,
    "if": _if,
    "switch": _switch,
    "foreach": _foreach,
    "do_while": _do_while,
    "wait": _wait,
    "signal": _signal,
    "workflow": _workflow,
}


def options_of(kind: StepKind, step_id: str, step: Mapping[str, Any]) -> dict[str, Any]:
    """The kind-specific settings of a valid step, normalised (see StepPlan.options)."""
    if kind == "if":
        return {
            "condition": step["condition"],
            "then": targets(step.get("then")),
            "else": targets(step.get("else")),
        }
    if kind == "switch":
        return {
            "expression": step["expression"],
            "cases": {value: targets(leads) for value, leads in step["cases"].items()},
            "default": targets(step.get("default")),
        }
    if kind == "foreach":
        return {
            "items": step["items"],
            "max_parallel": step.get("max_parallel"),
            "continue_on_error": bool(step.get("continue_on_error", False)),
        }
    if kind == "do_while":
        key = "while" if step.get("while") is not None else "until"
        return {key: step[key]}
    if kind == "wait":
        key = "duration_ms" if step.get("duration_ms") is not None else "until"
        return {key: step[key]}
    if kind == "signal":
        found = {"signal": step.get("signal") or step_id}
        for key in ("default", "schema"):
            if key in step:
                found[key] = step[key]
        return found
    if kind == "workflow":
        return {"workflow_name": step["workflow_name"], "version": step.get("version")}
    return {}


# ---------------------------------------------------------------------------- shared checks


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 time, or None if the text is not one."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None


def json_schema_problems(schema: object, at: str) -> list[FieldProblem]:
    """Problems of a JSON Schema (a known dialect, valid against its metaschema)."""
    if not isinstance(schema, Mapping):
        return [FieldProblem(at, "must be an object (a JSON Schema)")]
    dialect = schema.get("$schema")
    if dialect is not None and (
        not isinstance(dialect, str) or validators.validator_for(schema, default=None) is None
    ):
        return [FieldProblem(f"{at}.$schema", "is not a JSON Schema dialect we know")]
    cls = validators.validator_for(schema)
    meta_validator = validators.validator_for(cls.META_SCHEMA, default=cls)
    checker = meta_validator(cls.META_SCHEMA, format_checker=meta_validator.FORMAT_CHECKER)
    return [
        FieldProblem(".".join([at, *map(str, error.absolute_path)]), error.message)
        for error in sorted(checker.iter_errors(schema), key=lambda e: list(map(str, e.path)))
    ]


_LOCAL_ONLY: Final = referencing.Registry()
"""A registry that retrieves nothing: without one, jsonschema fetches a remote ``$ref`` with
``urlopen`` (no timeout) while it validates."""


def local_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator of data against ``schema`` (in the dialect it names, 2020-12 when none)
    that resolves a ``$ref`` within the schema only: nothing is fetched from the network (a
    remote one raises ``referencing.exceptions.Unresolvable`` while it validates)."""
    return validators.validator_for(schema)(schema, registry=_LOCAL_ONLY)


def data_problems(schema: Mapping[str, Any], data: object, at: str) -> list[FieldProblem]:
    """Problems of data against a (valid) JSON Schema, located under ``at`` (see
    :func:`local_validator`: a remote ``$ref`` is a problem of its own)."""
    validator = local_validator(schema)
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
    except Exception as error:  # an unresolvable $ref, for instance
        return [FieldProblem(at, f"cannot be checked against the schema: {error}")]
    return [FieldProblem(".".join([at, *map(str, e.absolute_path)]), e.message) for e in errors]


def _condition(value: object, at: str, place: Place) -> list[FieldProblem]:
    """An expression, or a ``$.`` reference, readable at this place."""
    if value is None:
        return [FieldProblem(at, "is required")]
    if is_reference(value):
        assert isinstance(value, str)
        return value_problems(value, at, place.names, place.variables)
    return expression_problems(value, at, place.names)


def _mapping(step: Mapping[str, Any], at: str, place: Place) -> list[FieldProblem]:
    mapping = step.get("input_mapping")
    if mapping is None:
        return []
    return mapping_problems(
        mapping, f"{at}.input_mapping", set(place.names.steps), place.variables, place.names.locals
    )


def _retry(step: Mapping[str, Any], at: str) -> list[FieldProblem]:
    _, problems = RetryPolicy.parse(
        step.get("retry_config"), base=RETRY_OVERRIDE_BASE, prefix=f"{at}.retry_config"
    )
    return problems


def _body_problems(step: Mapping[str, Any], at: str) -> list[FieldProblem]:
    body = step.get("steps")
    if body is None:
        return [FieldProblem(f"{at}.steps", "is required")]
    if not isinstance(body, Mapping) or not body:
        return [FieldProblem(f"{at}.steps", "must be an object of one or more steps")]
    return []


def _target_problems(step_id: str, value: object, at: str, place: Place) -> list[FieldProblem]:
    if not isinstance(value, str | list) or (isinstance(value, list) and not value):
        return [FieldProblem(at, "must be a step id or a list of step ids")]
    problems = []
    for index, target in enumerate([value] if isinstance(value, str) else value):
        where = at if isinstance(value, str) else f"{at}.{index}"
        if not isinstance(target, str):
            problems.append(FieldProblem(where, "must be a step id"))
        elif target == step_id:
            problems.append(FieldProblem(where, "a branch cannot lead to itself"))
        elif target not in place.block:
            problems.append(FieldProblem(where, f"step {target!r} does not exist in this block"))
    return problems


def _agent_problems(name: object, at: str, agents: Mapping[str, str]) -> list[FieldProblem]:
    if name is None:
        return [FieldProblem(at, "is required")]
    if not isinstance(name, str) or not name:
        return [FieldProblem(at, "must be an agent's name")]
    status = agents.get(name)
    if status is None:
        return [FieldProblem(at, f"no agent named {name!r} is registered")]
    if status != "active":
        return [FieldProblem(at, f"agent {name!r} is {status}; steps may only use active agents")]
    return []


def _range(value: object, at: str, low: int, high: int) -> list[FieldProblem]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [FieldProblem(at, "must be an integer")]
    if not low <= value <= high:
        return [FieldProblem(at, f"must be between {low} and {high}")]
    return []
