"""Input mappings: how a step's input is made from the run input, variables and earlier outputs.

A mapping is a JSON object. Every string in it (at any depth) of the form

* ``$.input`` or ``$.input.<field>[.<field>...]`` — the run's input data,
* ``$.vars.<name>[.<field>...]`` — a workflow variable (its default, or the run's override),
* ``$.steps.<step_id>.output`` or ``$.steps.<step_id>.output.<field>[...]`` — an upstream
  step's output,
* inside a ``foreach`` body, ``$.item[...]`` and ``$.index``; inside a ``do_while`` body,
  ``$.iteration``, ``$.index`` and ``$.previous[...]`` (see :mod:`.expressions`),

is a *reference* and is replaced by the value it points at. An object whose only key is
``$expr`` is an *expression* (JMESPath, :mod:`flowledger.domain.expressions`) and is replaced by
its value: ``{"count": {"$expr": "length(steps.search.output.hits)"}}``. Anything else is a
literal and is passed as it is. Path segments are object keys, or list indexes written as
digits (``$.steps.search.output.hits.0.title``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from flowledger.domain.errors import FieldProblem
from flowledger.domain.expressions import (
    ExpressionError,
    Names,
    evaluate,
    expression_problems,
    name_problem,
)

Root = Literal["input", "vars", "steps", "item", "index", "iteration", "previous"]
REFERENCE_PREFIX: Final = "$."
EXPRESSION_KEY: Final = "$expr"
_ROOTS: Final = ("input", "vars", "steps", "item", "index", "iteration", "previous")
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


@dataclass(frozen=True)
class Context:
    """What a step instance's mapping (and expressions) may read."""

    input_data: Mapping[str, Any]
    variables: Mapping[str, Any]
    outputs: Mapping[str, Any]
    """Output of each readable step, by step id."""
    locals: Mapping[str, Any] = field(default_factory=dict)
    """``item``, ``index``, ``iteration``, ``previous``, where defined."""

    def document(self) -> dict[str, Any]:
        """The JSON object expressions read."""
        return {
            "input": self.input_data,
            "vars": self.variables,
            "steps": {step_id: {"output": out} for step_id, out in self.outputs.items()},
            **self.locals,
        }


class MappingError(ValueError):
    """A reference is malformed, or points at something that does not exist."""


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REFERENCE_PREFIX)


def expression_of(value: object) -> str | None:
    """The expression of an ``{"$expr": "..."}`` object (None for anything else)."""
    if isinstance(value, Mapping) and len(value) == 1 and EXPRESSION_KEY in value:
        text = value[EXPRESSION_KEY]
        return text if isinstance(text, str) else ""
    return None


def parse_reference(text: str) -> Reference:
    """Parse ``$.<root>.<path>``; raises :class:`MappingError` with a reason if malformed."""
    if not text.startswith(REFERENCE_PREFIX):
        raise MappingError(f"{text!r} is not a reference (references start with '$.')")
    segments = text[len(REFERENCE_PREFIX) :].split(".")
    root, path = segments[0], tuple(segments[1:])
    if root not in _ROOTS:
        raise MappingError(f"{text!r} must start with $.input, $.vars or $.steps")
    for segment in path:
        if not _SEGMENT.match(segment):
            raise MappingError(f"{text!r} has an empty or invalid path segment {segment!r}")
    if root == "vars" and not path:
        raise MappingError(f"{text!r} must name a variable ($.vars.<name>)")
    if root == "steps" and (len(path) < 2 or path[1] != "output"):
        raise MappingError(f"{text!r} must read a step's output ($.steps.<step_id>.output...)")
    if root in ("index", "iteration") and path:
        raise MappingError(f"{text!r}: $.{root} is a number and has no fields")
    return Reference(root, path)  # type: ignore[arg-type]


def references(mapping: object, at: str = "") -> Iterator[tuple[str, str]]:
    """Every reference string in a mapping, with its location (``input_mapping.a.b``)."""
    if isinstance(mapping, str):
        if is_reference(mapping):
            yield at, mapping
    elif isinstance(mapping, Mapping):
        if expression_of(mapping) is not None:
            return
        for key, value in mapping.items():
            yield from references(value, f"{at}.{key}" if at else str(key))
    elif isinstance(mapping, list):
        for index, value in enumerate(mapping):
            yield from references(value, f"{at}.{index}" if at else str(index))


def expressions(mapping: object, at: str = "") -> Iterator[tuple[str, str]]:
    """Every ``{"$expr": ...}`` in a mapping, with its location."""
    text = expression_of(mapping)
    if text is not None:
        yield at, text
    elif isinstance(mapping, Mapping):
        for key, value in mapping.items():
            yield from expressions(value, f"{at}.{key}" if at else str(key))
    elif isinstance(mapping, list):
        for index, value in enumerate(mapping):
            yield from expressions(value, f"{at}.{index}" if at else str(index))


def mapping_problems(
    mapping: object,
    location: str,
    upstream: set[str],
    variables: Mapping[str, Any],
    local_names: frozenset[str] = frozenset(),
) -> list[FieldProblem]:
    """Problems of a step's mapping: malformed references and expressions, unknown variables,
    steps that are not upstream of the step (including the step itself), and ``item`` or
    ``iteration`` outside the bodies that define them."""
    if not isinstance(mapping, Mapping):
        return [FieldProblem(location, "must be an object")]
    problems: list[FieldProblem] = []
    names = Names(steps=frozenset(upstream), locals=local_names)
    for where, text in references(mapping):
        problems += value_problems(text, f"{location}.{where}", names, variables)
    for where, text in expressions(mapping):
        problems += expression_problems(text, f"{location}.{where}", names)
    return problems


def value_problems(
    text: str, at: str, names: Names, variables: Mapping[str, Any]
) -> list[FieldProblem]:
    """Problems of one reference string written at ``at``."""
    try:
        reference = parse_reference(text)
    except MappingError as error:
        return [FieldProblem(at, str(error))]
    if reference.root == "vars" and reference.path[0] not in variables:
        return [FieldProblem(at, f"variable {reference.path[0]!r} is not defined")]
    message = name_problem(reference.root, reference.step_id, names)
    return [FieldProblem(at, message)] if message is not None else []


def resolve(
    mapping: Any,
    *,
    input_data: Mapping[str, Any],
    variables: Mapping[str, Any],
    outputs: Mapping[str, Any],
    local_values: Mapping[str, Any] | None = None,
) -> Any:
    """The mapping with every reference and expression replaced by its value; MappingError if
    a reference finds nothing or an expression fails."""
    context = Context(input_data, variables, outputs, local_values or {})
    return resolve_in(mapping, context)


def resolve_in(mapping: Any, context: Context, document: dict[str, Any] | None = None) -> Any:
    """:func:`resolve` over a :class:`Context`."""
    if isinstance(mapping, str):
        return value_of(mapping, context) if is_reference(mapping) else mapping
    text = expression_of(mapping)
    if text is not None:
        try:
            return evaluate(text, document if document is not None else context.document())
        except ExpressionError as error:
            raise MappingError(str(error)) from None
    if isinstance(mapping, Mapping):
        return {key: resolve_in(value, context, document) for key, value in mapping.items()}
    if isinstance(mapping, list):
        return [resolve_in(value, context, document) for value in mapping]
    return mapping


def value_of(text: str, context: Context) -> Any:
    """The value a reference string points at in ``context``."""
    reference = parse_reference(text)
    if reference.root == "input":
        return _walk(context.input_data, reference.path, text)
    if reference.root == "vars":
        return _walk(context.variables, reference.path, text)
    if reference.root == "steps":
        step_id = reference.path[0]
        if step_id not in context.outputs:
            raise MappingError(f"{text}: step {step_id!r} has no output")
        return _walk(context.outputs[step_id], reference.path[2:], text)
    if reference.root not in context.locals:
        raise MappingError(f"{text}: ${reference.root} is not defined here")
    return _walk(context.locals[reference.root], reference.path, text)


def _walk(value: Any, path: tuple[str, ...], text: str) -> Any:
    for segment in path:
        if isinstance(value, Mapping) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            raise MappingError(f"{text}: no value at {segment!r}")
    return value
