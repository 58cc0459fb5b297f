"""Expressions: the conditions of branches and loops, the items of a map, computed inputs.

Expressions are `JMESPath <https://jmespath.org>`_ (ADR 0016): a query language over JSON with
comparisons, boolean logic, projections, filters and built-in functions, and nothing else — it
cannot call code, reach the process or loop without end, so a workflow author can run nothing
but a query over the run's own data. Never ``eval``.

An expression reads one JSON object, its *context*:

* ``input`` — the run's input; ``vars`` — the workflow variables;
* ``steps.<id>.output`` — the output of a step the expression may read (upstream of it);
* inside a ``foreach`` body: ``item`` and ``index`` (0-based) of the item;
* inside a ``do_while`` body (and its condition): ``iteration`` (1-based), ``index``
  (0-based) and ``previous`` (the output of the iteration before, null in the first).

``input.amount > `100` && vars.region == 'eu'``, ``length(steps.search.output.hits)``,
``input.orders[?total > `10`]``, ``steps.a.output || steps.b.output`` (the branch that ran).
Numbers and other JSON literals are written in backticks, strings in single quotes.

A condition is *true* unless its value is false, null, an empty string, list or object
(JMESPath's own truth rule). A ``switch`` compares its value to each case's key: a string as it
is, anything else as JSON text (``1``, ``true``, ``null``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from flowledger.domain.errors import FieldProblem

MAX_EXPRESSION_LENGTH: Final = 2000
ROOTS: Final = ("input", "vars", "steps", "item", "index", "iteration", "previous")
MAP_LOCALS: Final = frozenset({"item", "index"})
LOOP_LOCALS: Final = frozenset({"iteration", "index", "previous"})
_WHERE_LOCALS_LIVE: Final = {
    "item": "inside a foreach body",
    "index": "inside a foreach or do_while body",
    "iteration": "inside a do_while body or its condition",
    "previous": "inside a do_while body or its condition",
}


class ExpressionError(ValueError):
    """An expression is malformed, or failed on the data it was given."""


@dataclass(frozen=True)
class Names:
    """What an expression at some place of a definition may read."""

    steps: frozenset[str] = frozenset()
    """Step ids whose output is readable there (upstream of the step)."""
    locals: frozenset[str] = frozenset()
    """``item``, ``index``, ``iteration``, ``previous``: those defined there."""


@lru_cache(maxsize=4096)
def compiled(text: str) -> ParsedResult:
    """The parsed expression (parsed once per text)."""
    try:
        return jmespath.compile(text)
    except JMESPathError as error:
        raise ExpressionError(_first_line(error)) from None


def evaluate(text: str, context: Mapping[str, Any]) -> Any:
    """The value of ``text`` over ``context``; :class:`ExpressionError` if it cannot be had."""
    try:
        return compiled(text).search(context)
    except JMESPathError as error:
        raise ExpressionError(f"{text!r}: {_first_line(error)}") from None


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null and empty strings, lists and objects are false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def case_label(value: Any) -> str:
    """The case a switch value selects: strings as they are, anything else as JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def expression_problems(text: object, at: str, names: Names) -> list[FieldProblem]:
    """Problems of an expression written at ``at``: it must parse, and read only roots and
    steps that exist there."""
    if not isinstance(text, str) or not text.strip():
        return [FieldProblem(at, "must be an expression (a JMESPath string)")]
    if len(text) > MAX_EXPRESSION_LENGTH:
        return [FieldProblem(at, f"must be at most {MAX_EXPRESSION_LENGTH} characters")]
    try:
        parsed = compiled(text)
    except ExpressionError as error:
        return [FieldProblem(at, f"is not a valid expression: {error}")]
    problems = []
    for root, step_id in sorted(set(_root_reads(parsed.parsed, at_root=True))):
        message = name_problem(root, step_id, names)
        if message is not None:
            problems.append(FieldProblem(at, message))
    return problems


def name_problem(root: str, step_id: str | None, names: Names) -> str | None:
    """Why an expression or a reference may not read ``root`` (``steps.<step_id>``) here."""
    if root not in ROOTS:
        return f"{root!r} is not defined: expressions read {', '.join(ROOTS)}"
    if root in _WHERE_LOCALS_LIVE and root not in names.locals:
        return f"{root!r} is only defined {_WHERE_LOCALS_LIVE[root]}"
    if root == "steps" and step_id is not None and step_id not in names.steps:
        return f"step {step_id!r} is not upstream of this step"
    return None


def _root_reads(node: Mapping[str, Any], *, at_root: bool) -> Iterator[tuple[str, str | None]]:
    """Each (root name, step id) a parsed expression reads from the context's top level."""
    kind = node.get("type")
    children: list[Mapping[str, Any]] = list(node.get("children") or [])
    if kind == "field":
        if at_root:
            yield node["value"], None
        return
    if kind in ("subexpression", "index_expression", "pipe") or kind in _PROJECTIONS:
        if not children:
            return
        first, rest = children[0], children[1:]
        if at_root and kind == "subexpression" and _is_field(first, "steps") and rest:
            yield "steps", _leftmost_field(rest[0])
        else:
            yield from _root_reads(first, at_root=at_root)
        for child in rest:
            yield from _root_reads(child, at_root=False)
        return
    if kind == "expref":
        for child in children:
            yield from _root_reads(child, at_root=False)
        return
    for child in children:  # comparisons, and/or/not, functions, multi-selects: same level
        yield from _root_reads(child, at_root=at_root)


_PROJECTIONS: Final = frozenset({"projection", "filter_projection", "value_projection", "flatten"})


def _is_field(node: Mapping[str, Any], name: str) -> bool:
    return node.get("type") == "field" and node.get("value") == name


def _leftmost_field(node: Mapping[str, Any]) -> str | None:
    while node.get("type") != "field":
        children = node.get("children") or []
        if not children:
            return None
        node = children[0]
    value = node.get("value")
    return value if isinstance(value, str) else None


def _first_line(error: Exception) -> str:
    """A one-line reason: what went wrong and where (parse errors), or the library's words."""
    position = getattr(error, "lex_position", None)
    if isinstance(position, int):
        if getattr(error, "message", None):  # a lexer error says what it found
            return f"{error.message} at character {position}"  # type: ignore[attr-defined]
        token = getattr(error, "token_value", None)
        found = f"unexpected {token!r}" if token is not None else "it ends too early"
        return f"{found} at character {position}"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
