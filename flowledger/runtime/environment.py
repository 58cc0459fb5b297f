"""Typed settings from environment variables: each field of a capability's settings class names
its variable, its default and how its text is read, and one function reads them all.

A capability declares its settings once, as a frozen dataclass::

    @dataclass(frozen=True)
    class ExecutorSettings:
        max_runs: int = setting("FLOWLEDGER_EXECUTOR_MAX_RUNS", 200, integer(minimum=1))

        @classmethod
        def from_settings(cls, settings: Settings) -> ExecutorSettings:
            return read_settings(cls, settings.extra)

:func:`read_settings` reads every declared variable (an unset or blank one takes the default),
and a value that cannot be used raises :class:`SettingsError` naming the variable. Rules that
span several variables go in the class's ``__post_init__``. The readers below are the only
parsers of environment text: a capability composes them (or writes one that raises
:class:`ValueError` with what is wrong), it never parses ``Settings.extra`` itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")

_VARIABLE: Final = "flowledger.environment.variable"
TRUE_WORDS: Final = ("on", "true", "yes", "1")
FALSE_WORDS: Final = ("off", "false", "no", "0")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names its variable."""


@dataclass(frozen=True)
class Variable:
    """An environment variable behind one settings field."""

    name: str
    parse: Callable[[str], Any]
    blank_is_unset: bool = True
    """Whether an empty (or all-blank) value means "take the default"."""


def setting(name: str, default: T, parse: Callable[[str], T], *, blank_is_unset: bool = True) -> T:
    """A dataclass field read from the variable ``name`` by ``parse`` (``default`` when unset)."""
    spec = Variable(name, parse, blank_is_unset)
    return field(default=default, metadata={_VARIABLE: spec})


def variables(settings_class: type[DataclassInstance]) -> dict[str, Variable]:
    """The declared variables of a settings class, by field name."""
    return {
        f.name: f.metadata[_VARIABLE] for f in fields(settings_class) if _VARIABLE in f.metadata
    }


def read_settings(settings_class: type[D], env: Mapping[str, str], **given: Any) -> D:
    """An instance of ``settings_class`` with every declared variable read from ``env``.

    ``given`` fills the fields that are not environment variables of their own (for example a
    value the core settings already hold). Raises :class:`SettingsError` naming the variable.
    """
    values = dict(given)
    for name, variable in variables(settings_class).items():
        if name in values:
            continue
        raw = env.get(variable.name)
        if raw is None or (variable.blank_is_unset and not raw.strip()):
            continue
        try:
            values[name] = variable.parse(raw)
        except SettingsError:
            raise
        except ValueError as error:
            raise SettingsError(f"{variable.name} {error}, got {raw!r}") from None
    return settings_class(**values)


# ---------------------------------------------------------------------------- readers
# Each takes the variable's text and returns the value, or raises ValueError saying what a
# usable value is ("must be ..."); read_settings adds the variable's name and the text given
# (so a secret is read with `text`, which never fails and so is never echoed).


def text(raw: str) -> str:
    return raw


def integer(*, minimum: int = 0, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number, at least ``minimum`` (and at most ``maximum`` when given)."""

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("must be an integer") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}")
        return value

    return parse


def seconds(*, above_zero: bool = False) -> Callable[[str], float]:
    """A finite number of seconds, not negative (with ``above_zero``: more than zero)."""

    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("must be a number of seconds") from None
        if not math.isfinite(value):
            raise ValueError("must be a number of seconds")
        if value < 0 or (above_zero and value == 0):
            raise ValueError("must be more than 0" if above_zero else "must not be negative")
        return value

    return parse


def switch(raw: str) -> bool:
    """``on``/``off`` (also ``true``/``false``, ``yes``/``no``, ``1``/``0``)."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("must be on or off (true/false, yes/no and 1/0 work too)")


def one_of(*choices: str, case: Callable[[str], str] = str.lower) -> Callable[[str], str]:
    """One of ``choices``, compared after ``case`` (lower-casing by default)."""

    def parse(raw: str) -> str:
        value = case(raw.strip())
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse
