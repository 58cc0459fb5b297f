"""Workflow triggers: what may start a run besides a person. Stored and validated now; acting
on them (a scheduler, inbound webhooks) is later work.

A trigger is an object with a ``type`` and an optional ``enabled`` flag (default true):

* ``{"type": "manual"}`` — runs started through the API (always possible; listed for clarity).
* ``{"type": "schedule", "cron": "*/15 * * * *", "input": {...}}`` — a five-field cron
  expression (minute hour day-of-month month day-of-week, evaluated in UTC) or one of
  ``@hourly @daily @midnight @weekly @monthly @yearly @annually``; ``input`` is the run input of
  the scheduled runs and must satisfy the workflow's ``input_schema``.
* ``{"type": "webhook", "path": "orders-created"}`` — an inbound webhook; ``path`` (letters,
  digits, ``_`` and ``-``) is unique within the workflow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from flowledger.domain.errors import FieldProblem

TRIGGER_FIELDS: Final[dict[str, frozenset[str]]] = {
    "manual": frozenset({"type", "enabled"}),
    "schedule": frozenset({"type", "enabled", "cron", "input"}),
    "webhook": frozenset({"type", "enabled", "path"}),
}
MAX_TRIGGERS: Final = 20
CRON_MACROS: Final = (
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS: Final[tuple[tuple[str, int, int, dict[str, int]], ...]] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {name: i for i, name in enumerate(_DAYS)}),
)
_PATH = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")

InputCheck = Callable[[Any, str], list[FieldProblem]]
"""Problems of a run input against the workflow's input schema, reported under a location."""


def trigger_problems(triggers: object, check_input: InputCheck | None) -> list[FieldProblem]:
    if not isinstance(triggers, list):
        return [FieldProblem("triggers", "must be a list")]
    if len(triggers) > MAX_TRIGGERS:
        return [FieldProblem("triggers", f"must have at most {MAX_TRIGGERS} triggers")]
    problems: list[FieldProblem] = []
    paths: set[str] = set()
    for index, trigger in enumerate(triggers):
        at = f"triggers.{index}"
        if not isinstance(trigger, Mapping):
            problems.append(FieldProblem(at, "must be an object"))
            continue
        kind = trigger.get("type")
        if kind not in TRIGGER_FIELDS:
            problems.append(FieldProblem(f"{at}.type", "must be one of manual, schedule, webhook"))
            continue
        for key in sorted(set(trigger) - TRIGGER_FIELDS[kind]):
            problems.append(FieldProblem(f"{at}.{key}", f"is not a setting of {kind} triggers"))
        if "enabled" in trigger and not isinstance(trigger["enabled"], bool):
            problems.append(FieldProblem(f"{at}.enabled", "must be true or false"))
        if kind == "schedule":
            problems += _schedule_problems(trigger, at, check_input)
        elif kind == "webhook" and "path" in trigger:
            path = trigger["path"]
            if not isinstance(path, str) or not _PATH.match(path):
                problems.append(
                    FieldProblem(f"{at}.path", "must be 1 to 100 letters, digits, _ or -")
                )
            elif path in paths:
                problems.append(FieldProblem(f"{at}.path", f"{path!r} is used by another trigger"))
            else:
                paths.add(path)
    return problems


def _schedule_problems(
    trigger: Mapping[str, Any], at: str, check_input: InputCheck | None
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    cron = trigger.get("cron")
    if cron is None:
        problems.append(FieldProblem(f"{at}.cron", "is required for schedule triggers"))
    elif not isinstance(cron, str):
        problems.append(FieldProblem(f"{at}.cron", "must be a string"))
    elif (problem := cron_problem(cron)) is not None:
        problems.append(FieldProblem(f"{at}.cron", problem))
    if "input" in trigger:
        if not isinstance(trigger["input"], Mapping):
            problems.append(FieldProblem(f"{at}.input", "must be an object"))
        elif check_input is not None:
            problems += check_input(trigger["input"], f"{at}.input")
    return problems


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression we accept, or None when it is one."""
    if expression.strip().lower() in CRON_MACROS:
        return None
    parts = expression.split()
    if len(parts) != len(_CRON_FIELDS):
        return (
            "must have five fields (minute hour day-of-month month day-of-week) "
            f"or be one of {', '.join(CRON_MACROS)}"
        )
    for part, (name, low, high, names) in zip(parts, _CRON_FIELDS, strict=True):
        for item in part.split(","):
            problem = _cron_item_problem(item.lower(), low, high, names)
            if problem:
                return f"{name} field {part!r}: {problem}"
    return None


def _cron_item_problem(item: str, low: int, high: int, names: Mapping[str, int]) -> str | None:
    base, slash, step = item.partition("/")
    if slash and (not step.isdigit() or int(step) < 1):
        return f"{item!r} has a step that is not a positive number"
    if base == "*":
        return None
    start, dash, end = base.partition("-")
    bounds = []
    for text in (start, end) if dash else (start,):
        value = names.get(text, int(text) if text.isdigit() else None)
        if value is None:
            return f"{text!r} is not a number" + (" or a name" if names else "")
        if not low <= value <= high:
            return f"{value} is outside {low}-{high}"
        bounds.append(value)
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        return f"range {base!r} runs backwards"
    return None
