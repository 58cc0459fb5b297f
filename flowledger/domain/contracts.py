"""Contracts: what agents say they accept and return, checked against what a workflow sends
them and reads from them.

An agent's A2A card may declare, per skill, a JSON Schema of the data part a skill takes and of
the one it answers with (the convention is in ADR 0021; the A2A client reads it). A step calls
an agent, not a skill: when several skills declare schemas, a value fits the agent if it fits
one of them.

Two checks, both reporting problems per step and field and never refusing anything:

* :func:`check_definition`, from the definition alone (``POST``/``PUT`` workflows with
  ``?check=contracts``): fields an agent requires that a mapping does not give, fields a closed
  schema does not accept, literals of the wrong type, references to fields an upstream agent's
  output (or the workflow's input schema) does not declare, and references whose declared type
  cannot be what the receiving field expects;
* :func:`check_dry_run`, from a dry run's trace (``/test``): each step's resolved input against
  its agent's input schema, each mocked output against its agent's output schema, and the
  references to undeclared output fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from flowledger.domain.dry_run import DryRun
from flowledger.domain.mappings import MappingError, is_reference, parse_reference, references
from flowledger.domain.plans import WorkflowPlan
from flowledger.domain.run_state import split_key
from flowledger.domain.step_kinds import local_validator

_REQUIRED = re.compile(r"^'(?P<name>.+)' is a required property$")
_NUMBERS: Final = frozenset({"integer", "number"})


@dataclass(frozen=True)
class SkillContract:
    """What one skill of an agent declares (either schema may be missing)."""

    skill_id: str
    input_schema: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AgentContract:
    agent_name: str
    skills: tuple[SkillContract, ...]

    @property
    def inputs(self) -> list[Mapping[str, Any]]:
        return [s.input_schema for s in self.skills if s.input_schema is not None]

    @property
    def outputs(self) -> list[Mapping[str, Any]]:
        return [s.output_schema for s in self.skills if s.output_schema is not None]


@dataclass(frozen=True)
class ContractProblem:
    step_id: str
    field: str
    """Where: ``input.<path>`` (the resolved input), ``output.<path>`` (a mocked output),
    ``input_mapping.<key>`` (the definition)."""
    message: str


def check_definition(
    plan: WorkflowPlan, contracts: Mapping[str, AgentContract]
) -> list[ContractProblem]:
    """Problems the definition shows against the agents' declared schemas, for every step at
    any depth (the steps a map runs per item and a loop per iteration too)."""
    problems: list[ContractProblem] = []
    for step in plan.every_step():
        problems += _undeclared_reads(plan, step.step_id, contracts)
        contract = _contract_of(contracts, step.agent_name)
        if contract is None or not contract.inputs or not isinstance(step.input_mapping, Mapping):
            continue
        per_skill = [
            _mapping_problems(plan, step.step_id, schema, contracts) for schema in contract.inputs
        ]
        closest: list[ContractProblem] = min(per_skill, key=len)
        problems += closest
    return problems


def check_dry_run(
    plan: WorkflowPlan, trace: DryRun, contracts: Mapping[str, AgentContract]
) -> list[ContractProblem]:
    """Problems a dry run shows: resolved inputs and mocked outputs that do not fit what their
    agents declare, and references to output fields no upstream agent declares."""
    problems: list[ContractProblem] = []
    read: set[str] = set()
    for traced in trace.steps:
        plan_id = split_key(traced.step_id)[1]  # a map's item or a loop's iteration: its step
        if plan_id not in read:  # a mapping's reads are the same in every instance
            read.add(plan_id)
            problems += [
                ContractProblem(traced.step_id, p.field, p.message)
                for p in _undeclared_reads(plan, plan_id, contracts)
            ]
        contract = _contract_of(contracts, traced.agent_name)
        if contract is None or traced.status != "SUCCEEDED":
            continue
        problems += _fits(traced.step_id, "input", traced.input, contract.inputs, "")
        if traced.output_source == "mock":
            problems += _fits(
                traced.step_id, "output", traced.output, contract.outputs, "mocked output: "
            )
    return problems


# ------------------------------------------------------------------------- values


def _fits(
    step_id: str, where: str, value: Any, schemas: Sequence[Mapping[str, Any]], prefix: str
) -> list[ContractProblem]:
    """Nothing when ``value`` fits one of ``schemas`` (or there are none); else the problems
    against the schema it comes closest to."""
    if not schemas:
        return []
    per_schema = [_violations(schema, value) for schema in schemas]
    best = min(per_schema, key=len)
    return [ContractProblem(step_id, _join(where, path), prefix + text) for path, text in best]


def _violations(schema: Mapping[str, Any], value: Any) -> list[tuple[str, str]]:
    try:
        errors = sorted(local_validator(schema).iter_errors(value), key=lambda e: list(e.path))
    except SchemaError as invalid:
        return [("", f"the agent's schema is not valid JSON Schema: {invalid.message}")]
    except Unresolvable as unresolvable:  # a remote $ref: nothing is fetched
        return [("", f"the agent's schema cannot be checked against: {unresolvable}")]
    found = []
    for error in errors:
        path = ".".join(str(p) for p in error.absolute_path)
        missing = _REQUIRED.match(error.message)
        if error.validator == "required" and missing:
            path = _join(path, missing["name"])
        found.append((path, error.message))
    return found


def _join(head: str, tail: str) -> str:
    return ".".join(part for part in (head, tail) if part)


# ------------------------------------------------------------------------- mappings


def _mapping_problems(
    plan: WorkflowPlan,
    step_id: str,
    schema: Mapping[str, Any],
    contracts: Mapping[str, AgentContract],
) -> list[ContractProblem]:
    """The mapping of ``step_id`` against one input schema of its agent."""
    mapping = plan.step(step_id).input_mapping
    agent = plan.step(step_id).agent_name
    problems: list[ContractProblem] = []
    properties = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
    assert isinstance(properties, Mapping)
    for name in schema.get("required") or []:
        if name not in mapping:
            problems.append(
                ContractProblem(
                    step_id,
                    f"input_mapping.{name}",
                    f"agent {agent!r} requires {name!r}; the mapping does not give it",
                )
            )
    for key, value in mapping.items():
        field = f"input_mapping.{key}"
        if key not in properties:
            if schema.get("additionalProperties") is False:
                accepted = ", ".join(sorted(properties)) or "nothing"
                problems.append(
                    ContractProblem(
                        step_id, field, f"agent {agent!r} does not accept {key!r} ({accepted})"
                    )
                )
            continue
        target = properties[key]
        if not isinstance(target, Mapping):
            continue
        if is_reference(value):
            given = _referenced_types(plan, value, contracts)
            expected = _types(target)
            if given and expected and not _overlap(given, expected):
                problems.append(
                    ContractProblem(
                        step_id,
                        field,
                        f"{value} is {' or '.join(sorted(given))}; agent {agent!r} expects "
                        f"{' or '.join(sorted(expected))}",
                    )
                )
        elif not any(True for _ in references(value)):
            problems += [
                ContractProblem(step_id, _join(field, path), text)
                for path, text in _violations(target, value)
            ]
    return problems


def _undeclared_reads(
    plan: WorkflowPlan, step_id: str, contracts: Mapping[str, AgentContract]
) -> list[ContractProblem]:
    """References in the step's mapping to upstream output fields (or input fields) that the
    upstream agent's output schema (or the workflow's input schema) does not declare."""
    problems = []
    for where, text in references(plan.step(step_id).input_mapping):
        try:
            reference = parse_reference(text)
        except MappingError:
            continue  # the definition's own validation reports it
        if reference.root == "steps":
            source = plan.step(reference.path[0]).agent_name
            contract = _contract_of(contracts, source)
            schemas = contract.outputs if contract else []
            path, owner = reference.path[2:], f"agent {source!r} does not declare"
            suffix = "in its output"
        elif reference.root == "input":
            schemas = [plan.input_schema] if plan.input_schema else []
            path, owner, suffix = reference.path, "the workflow's input schema does not declare", ""
        else:
            continue
        missing = _first_undeclared(schemas, path)
        if missing is not None:
            segment, declared = missing
            known = f" (it declares: {', '.join(declared)})" if declared else ""
            problems.append(
                ContractProblem(
                    step_id,
                    f"input_mapping.{where}",
                    f"{text}: {owner} {segment!r}" + (f" {suffix}" if suffix else "") + known,
                )
            )
    return problems


def _first_undeclared(
    schemas: Sequence[Mapping[str, Any]], path: Sequence[str]
) -> tuple[str, list[str]] | None:
    """The first segment of ``path`` that none of ``schemas`` declares where they list their
    fields, with the fields listed there; None when one of them declares the whole path, or
    does not say (no ``properties`` at some level: anything may be there)."""
    misses = []
    for schema in schemas:
        miss = _walk(schema, path)
        if miss is None:
            return None
        misses.append(miss)
    return misses[0] if misses else None


def _walk(schema: Mapping[str, Any], path: Sequence[str]) -> tuple[str, list[str]] | None:
    current: Mapping[str, Any] = schema
    for segment in path:
        state, child, listed = _child(current, segment)
        if state == "undeclared":
            return segment, listed
        if state == "open" or child is None:
            return None
        current = child
    return None


def _child(
    schema: Mapping[str, Any], segment: str
) -> tuple[str, Mapping[str, Any] | None, list[str]]:
    """``("declared", its schema, [])``, ``("undeclared", None, the fields listed)`` or
    ``("open", None, [])`` when the schema does not list its fields."""
    properties = schema.get("properties")
    listed = sorted(properties) if isinstance(properties, Mapping) else []
    if isinstance(properties, Mapping) and segment in properties:
        child = properties[segment]
        return "declared", child if isinstance(child, Mapping) else None, []
    if segment.isdigit() and isinstance(schema.get("items"), Mapping):
        return "declared", schema["items"], []
    branches = [b for k in ("anyOf", "oneOf", "allOf") for b in schema.get(k) or []]
    states = [_child(b, segment) for b in branches if isinstance(b, Mapping)]
    for state in states:
        if state[0] == "declared":
            return state
    if any(state[0] == "open" for state in states) and not listed:
        return "open", None, []
    listed = sorted({*listed, *(name for state in states for name in state[2])})
    if listed:
        return "undeclared", None, listed
    return "open", None, []


def _referenced_types(
    plan: WorkflowPlan, text: str, contracts: Mapping[str, AgentContract]
) -> set[str]:
    """The JSON types a reference's declared source may have (empty: not known)."""
    try:
        reference = parse_reference(text)
    except MappingError:
        return set()
    if reference.root == "steps":
        contract = _contract_of(contracts, plan.step(reference.path[0]).agent_name)
        schemas = contract.outputs if contract else []
        path: Sequence[str] = reference.path[2:]
    elif reference.root == "input":
        schemas = [plan.input_schema] if plan.input_schema else []
        path = reference.path
    elif reference.root in ("index", "iteration"):
        return {"integer"}
    elif reference.root != "vars":
        return set()  # a map's item, a loop's previous iteration: known only when it runs
    else:
        value: Any = plan.variables
        for segment in reference.path:
            if not isinstance(value, Mapping) or segment not in value:
                return set()
            value = value[segment]
        return {_type_of(value)}
    found: set[str] = set()
    for schema in schemas:
        at = _at(schema, path)
        types = _types(at) if at is not None else set()
        if not types:
            return set()  # one source may be anything: nothing is known
        found |= types
    return found


def _at(schema: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any] | None:
    """The schema declared at ``path``, if it is declared."""
    current: Mapping[str, Any] | None = schema
    for segment in path:
        if current is None:
            return None
        state, current, _ = _child(current, segment)
        if state != "declared":
            return None
    return current


def _types(schema: Mapping[str, Any]) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    return set()


def _overlap(given: set[str], expected: set[str]) -> bool:
    if given & expected:
        return True
    # every integer is a number; a number may be a whole one
    return bool(given & _NUMBERS and expected & _NUMBERS)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _contract_of(
    contracts: Mapping[str, AgentContract], agent_name: str | None
) -> AgentContract | None:
    """The declared contract of the agent a step calls; None for a step that calls none (a
    branch, a map, a wait, a signal, a sub-workflow)."""
    return contracts.get(agent_name) if agent_name is not None else None
