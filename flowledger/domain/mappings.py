"""Input mappings: how a step's input is made from the run input, variables and earlier outputs.

A mapping is a JSON object. Every string in it (at any depth) of the form

* ``$.input`` or ``$.input.<field>[.<field>...]`` — the run's input data,
* ``$.vars.<name>[.<field>...]`` — a workflow variable (its default, or the run's override),
* ``$.steps.<step_id>.output`` or ``$.steps.<step_id>.output.<field>[...]`` — an upstream
  step's output,

is a *reference* and is replaced by the value it points at. Anything else is a literal and is
passed as it is. Path segments are object keys, or list indexes written as digits
(``$.steps.search.output.hits.0.title``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from flowledger.domain.errors import FieldProblem

Root = Literal["input", "vars", "steps"]
REFERENCE_PREFIX: Final = "$."
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class Reference:
    root: Root
    path: tuple[str, ...]
    """Segments after the root; for ``steps`` it starts with the step id and ``output``."""

    @property
    def step_id(self) -> str | None:
        return self.path[0] if self.root == "steps" else None

    def __str__(self) -> str:
        return ".".join(("$", self.root, *self.path))


class MappingError(ValueError):
    """A reference is malformed, or points at something that does not exist."""


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REFERENCE_PREFIX)


def parse_reference(text: str) -> Reference:
    """Parse ``$.<root>.<path>``; raises :class:`MappingError` with a reason if malformed."""
    if not text.startswith(REFERENCE_PREFIX):
        raise MappingError(f"{text!r} is not a reference (references start with '$.')")
    segments = text[len(REFERENCE_PREFIX) :].split(".")
    root, path = segments[0], tuple(segments[1:])
    if root not in ("input", "vars", "steps"):
        raise MappingError(f"{text!r} must start with $.input, $.vars or $.steps")
    for segment in path:
        if not _SEGMENT.match(segment):
            raise MappingError(f"{text!r} has an empty or invalid path segment {segment!r}")
    if root == "vars" and not path:
        raise MappingError(f"{text!r} must name a variable ($.vars.<name>)")
    if root == "steps" and (len(path) < 2 or path[1] != "output"):
        raise MappingError(f"{text!r} must read a step's output ($.steps.<step_id>.output...)")
    return Reference(root, path)  # type: ignore[arg-type]


def references(mapping: object, at: str = "") -> Iterator[tuple[str, str]]:
    """Every reference string in a mapping, with its location (``input_mapping.a.b``)."""
    if isinstance(mapping, str):
        if is_reference(mapping):
            yield at, mapping
    elif isinstance(mapping, Mapping):
        for key, value in mapping.items():
            yield from references(value, f"{at}.{key}" if at else str(key))
    elif isinstance(mapping, list):
        for index, value in enumerate(mapping):
            yield from references(value, f"{at}.{index}" if at else str(index))


def mapping_problems(
    mapping: object, location: str, upstream: set[str], variables: Mapping[str, Any]
) -> list[FieldProblem]:
    """Problems of a step's mapping: malformed references, unknown variables, and steps that
    are not upstream of the step (including the step itself)."""
    if not isinstance(mapping, Mapping):
        return [FieldProblem(location, "must be an object")]
    problems: list[FieldProblem] = []
    for where, text in references(mapping):
        field = f"{location}.{where}"
        try:
            reference = parse_reference(text)
        except MappingError as error:
            problems.append(FieldProblem(field, str(error)))
            continue
        if reference.root == "vars" and reference.path[0] not in variables:
            problems.append(FieldProblem(field, f"variable {reference.path[0]!r} is not defined"))
        if reference.root == "steps" and reference.path[0] not in upstream:
            problems.append(
                FieldProblem(field, f"step {reference.path[0]!r} is not upstream of this step")
            )
    return problems


def resolve(
    mapping: Any,
    *,
    input_data: Mapping[str, Any],
    variables: Mapping[str, Any],
    outputs: Mapping[str, Any],
) -> Any:
    """The mapping with every reference replaced by its value; MappingError if one is missing."""
    if isinstance(mapping, str):
        if not is_reference(mapping):
            return mapping
        reference = parse_reference(mapping)
        if reference.root == "input":
            return _walk(input_data, reference.path, mapping)
        if reference.root == "vars":
            return _walk(variables, reference.path, mapping)
        step_id = reference.path[0]
        if step_id not in outputs:
            raise MappingError(f"{mapping}: step {step_id!r} has no output")
        return _walk(outputs[step_id], reference.path[2:], mapping)
    if isinstance(mapping, Mapping):
        return {
            key: resolve(value, input_data=input_data, variables=variables, outputs=outputs)
            for key, value in mapping.items()
        }
    if isinstance(mapping, list):
        return [
            resolve(value, input_data=input_data, variables=variables, outputs=outputs)
            for value in mapping
        ]
    return mapping


def _walk(value: Any, path: tuple[str, ...], text: str) -> Any:
    for segment in path:
        if isinstance(value, Mapping) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            raise MappingError(f"{text}: no value at {segment!r}")
    return value
