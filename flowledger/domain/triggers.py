"""Workflow triggers as written in a definition: what may start a run besides a person.

A trigger is an object with a ``type``, an optional ``enabled`` flag (default true) and an
optional ``id`` (a slug naming it across versions; see :func:`trigger_key`):

* ``{"type": "manual"}`` — runs started through the API (always possible; listed for clarity).
* ``{"type": "schedule", "cron": "*/15 * * * *", "input": {...}}`` — a five-field cron
  expression (minute hour day-of-month month day-of-week) or one of
  ``@hourly @daily @midnight @weekly @monthly @yearly @annually``, evaluated in UTC or in the
  IANA ``timezone`` it names; or ``"every": <seconds>`` instead of ``cron`` (ticks at whole
  multiples of the interval since the Unix epoch). ``input`` is the run input of the scheduled
  runs and must satisfy the workflow's ``input_schema``. ``catchup`` says what happens to ticks
  missed while no scheduler ran: ``skip`` them, run the ``latest`` (default), or run ``all``,
  at most ``catchup_limit`` (default 100) of the most recent ones.
* ``{"type": "webhook", "path": "orders-created"}`` — an inbound webhook at
  ``/hooks/<path>``; ``path`` (letters, digits, ``_`` and ``-``) is unique across all
  workflows. ``method`` (default POST), ``auth`` (none, token, hmac, basic), and ``headers`` /
  ``query`` (request header or query parameter → input field) say how it is called;
  ``event_type`` (a label) is added to the run input as ``event_type``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flowledger.domain.errors import FieldProblem

TRIGGER_FIELDS: Final[dict[str, frozenset[str]]] = {
    "manual": frozenset({"type", "enabled", "id"}),
    "schedule": frozenset(
        {"type", "enabled", "id", "cron", "every", "timezone", "input", "catchup", "catchup_limit"}
    ),
    "webhook": frozenset(
        {"type", "enabled", "id", "path", "method", "auth", "headers", "query", "event_type"}
    ),
}
CATCHUP_POLICIES: Final = ("skip", "latest", "all")
DEFAULT_CATCHUP: Final = "latest"
DEFAULT_CATCHUP_LIMIT: Final = 100
MAX_CATCHUP_LIMIT: Final = 1000
MAX_EVERY_S: Final = 366 * 86_400
WEBHOOK_METHODS: Final = ("POST", "PUT", "PATCH", "GET", "DELETE")
AUTH_FIELDS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    # required, optional
    "none": (frozenset(), frozenset()),
    "token": (frozenset({"token"}), frozenset({"header"})),
    "hmac": (frozenset({"secret"}), frozenset({"header", "tolerance_s"})),
    "basic": (frozenset({"username", "password"}), frozenset()),
}
DEFAULT_TOKEN_HEADER: Final = "X-Webhook-Token"  # noqa: S105  (a header name)
DEFAULT_SIGNATURE_HEADER: Final = "X-Webhook-Signature"
DEFAULT_TOLERANCE_S: Final = 300
SECRET_LENGTHS: Final = (16, 256)
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
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")

InputCheck = Callable[[Any, str], list[FieldProblem]]
"""Problems of a run input against the workflow's input schema, reported under a location."""


def trigger_problems(triggers: object, check_input: InputCheck | None) -> list[FieldProblem]:
    if not isinstance(triggers, list):
        return [FieldProblem("triggers", "must be a list")]
    if len(triggers) > MAX_TRIGGERS:
        return [FieldProblem("triggers", f"must have at most {MAX_TRIGGERS} triggers")]
    problems: list[FieldProblem] = []
    paths: set[str] = set()
    keys: set[str] = set()
    schedules = 0
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
        schedules += kind == "schedule"
        problems += _identity_problems(trigger, at, schedules, keys, paths)
        if kind == "schedule":
            problems += _schedule_problems(trigger, at, check_input)
        elif kind == "webhook":
            problems += _webhook_problems(trigger, at)
    return problems


def _identity_problems(
    trigger: Mapping[str, Any], at: str, schedules: int, keys: set[str], paths: set[str]
) -> list[FieldProblem]:
    """Problems with the trigger's id and path; notes both in ``keys`` and ``paths``."""
    problems: list[FieldProblem] = []
    given = trigger.get("id")
    if "id" in trigger and (not isinstance(given, str) or not _PATH.match(given)):
        problems.append(FieldProblem(f"{at}.id", "must be 1 to 100 letters, digits, _ or -"))
    elif trigger["type"] != "manual":
        key = trigger_key(trigger, schedules)
        if key in keys and "id" in trigger:  # a duplicate path is reported as such below
            problems.append(FieldProblem(f"{at}.id", f"{key!r} names another trigger"))
        keys.add(key)
    if trigger["type"] == "webhook" and "path" in trigger:
        path = trigger["path"]
        if not isinstance(path, str) or not _PATH.match(path):
            problems.append(FieldProblem(f"{at}.path", "must be 1 to 100 letters, digits, _ or -"))
        elif path in paths:
            problems.append(FieldProblem(f"{at}.path", f"{path!r} is used by another trigger"))
        else:
            paths.add(path)
    return problems


def trigger_key(trigger: Mapping[str, Any], schedule_number: int) -> str:
    """What names a trigger across versions of its workflow: its ``id`` when given, else a
    webhook's ``path``, else ``schedule-<n>`` for the n-th schedule trigger (1-based)."""
    given = trigger.get("id")
    if isinstance(given, str):
        return given
    if trigger.get("type") == "webhook":
        return str(trigger.get("path"))
    return f"schedule-{schedule_number}"


def trigger_entries(triggers: object) -> list[tuple[str, dict[str, Any]]]:
    """The (key, trigger) pairs of a valid definition's schedule and webhook triggers."""
    if not isinstance(triggers, list):
        return []
    entries: list[tuple[str, dict[str, Any]]] = []
    schedules = 0
    for trigger in triggers:
        if trigger.get("type") == "schedule":
            schedules += 1
        if trigger.get("type") in ("schedule", "webhook"):
            entries.append((trigger_key(trigger, schedules), dict(trigger)))
    return entries


def _webhook_problems(trigger: Mapping[str, Any], at: str) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if "path" not in trigger:
        problems.append(FieldProblem(f"{at}.path", "is required for webhook triggers"))
    method = trigger.get("method", "POST")
    if method not in WEBHOOK_METHODS:
        problems.append(
            FieldProblem(f"{at}.method", f"must be one of {', '.join(WEBHOOK_METHODS)}")
        )
    if "auth" in trigger:
        problems += _auth_problems(trigger["auth"], f"{at}.auth")
    label = trigger.get("event_type", "x")
    if not isinstance(label, str) or not 1 <= len(label) <= 100 or not label.isprintable():
        problems.append(FieldProblem(f"{at}.event_type", "must be a string of 1 to 100 characters"))
    for part, name_rule in (("headers", _HEADER), ("query", _PATH)):
        if part not in trigger:
            continue
        mapping = trigger[part]
        if not isinstance(mapping, Mapping):
            problems.append(FieldProblem(f"{at}.{part}", "must be an object"))
            continue
        for name, field in mapping.items():
            if not isinstance(name, str) or not name_rule.match(name):
                problems.append(FieldProblem(f"{at}.{part}", f"{name!r} is not a {part[:-1]} name"))
            elif not isinstance(field, str) or not _FIELD.match(field):
                problems.append(
                    FieldProblem(f"{at}.{part}.{name}", "must name an input field (a identifier)")
                )
    return problems


def _auth_problems(auth: object, at: str) -> list[FieldProblem]:
    if not isinstance(auth, Mapping):
        return [FieldProblem(at, "must be an object")]
    kind = auth.get("type")
    if kind not in AUTH_FIELDS:
        return [FieldProblem(f"{at}.type", "must be one of none, token, hmac, basic")]
    required, optional = AUTH_FIELDS[kind]
    problems = [
        FieldProblem(f"{at}.{key}", f"is not a setting of {kind} authentication")
        for key in sorted(set(auth) - required - optional - {"type"})
    ]
    problems += [
        FieldProblem(f"{at}.{key}", f"is required for {kind} authentication")
        for key in sorted(required - set(auth))
    ]
    low, high = SECRET_LENGTHS
    for key in ("token", "secret"):
        value = auth.get(key)
        if key in auth and (not isinstance(value, str) or not low <= len(value) <= high):
            problems.append(
                FieldProblem(f"{at}.{key}", f"must be a string of {low} to {high} characters")
            )
    for key in ("username", "password"):
        value = auth.get(key)
        if key in auth and (not isinstance(value, str) or not 1 <= len(value) <= high):
            problems.append(
                FieldProblem(f"{at}.{key}", f"must be a string of 1 to {high} characters")
            )
    if kind == "basic" and ":" in str(auth.get("username", "")):
        problems.append(FieldProblem(f"{at}.username", "must not contain ':'"))
    if "header" in auth and (
        not isinstance(auth["header"], str) or not _HEADER.match(auth["header"])
    ):
        problems.append(FieldProblem(f"{at}.header", "must be a valid HTTP header name"))
    tolerance = auth.get("tolerance_s", DEFAULT_TOLERANCE_S)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or not 1 <= tolerance <= 3600:
        problems.append(FieldProblem(f"{at}.tolerance_s", "must be an integer between 1 and 3600"))
    return problems


def _schedule_problems(
    trigger: Mapping[str, Any], at: str, check_input: InputCheck | None
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    cron = trigger.get("cron")
    every = trigger.get("every")
    if "every" in trigger:
        if cron is not None:
            problems.append(FieldProblem(f"{at}.every", "give cron or every, not both"))
        elif isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= MAX_EVERY_S:
            problems.append(
                FieldProblem(f"{at}.every", f"must be a number of seconds from 1 to {MAX_EVERY_S}")
            )
    elif cron is None:
        problems.append(FieldProblem(f"{at}.cron", "is required for schedule triggers"))
    elif not isinstance(cron, str):
        problems.append(FieldProblem(f"{at}.cron", "must be a string"))
    elif (problem := cron_problem(cron)) is not None:
        problems.append(FieldProblem(f"{at}.cron", problem))
    zone = trigger.get("timezone", "UTC")
    if not isinstance(zone, str) or not _known_zone(zone):
        problems.append(
            FieldProblem(f"{at}.timezone", "must be an IANA time zone such as Europe/Paris")
        )
    if trigger.get("catchup", DEFAULT_CATCHUP) not in CATCHUP_POLICIES:
        problems.append(FieldProblem(f"{at}.catchup", "must be one of skip, latest, all"))
    limit = trigger.get("catchup_limit", DEFAULT_CATCHUP_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CATCHUP_LIMIT:
        problems.append(
            FieldProblem(f"{at}.catchup_limit", f"must be an integer from 1 to {MAX_CATCHUP_LIMIT}")
        )
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


def _known_zone(name: str) -> bool:
    """Whether ``name`` is a time zone of the IANA database (read from the system's tzdata,
    which is static data: the domain still does no I/O of its own)."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
