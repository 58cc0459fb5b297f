"""Named domain errors. The HTTP layer maps each kind to a status code in one place."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one input field; ``field`` is a dotted path (``retry_config.timeout``)."""

    field: str
    message: str


class InvalidInput(DomainError):
    """The input breaks a rule; every problem found is listed (HTTP 422)."""

    def __init__(self, problems: list[FieldProblem], detail: str | None = None) -> None:
        if not problems:
            raise ValueError("InvalidInput needs at least one problem")
        super().__init__(detail or _summary(problems))
        self.problems = problems


def raise_if_any(problems: list[FieldProblem]) -> None:
    """Raise :class:`InvalidInput` listing ``problems``, if there are any."""
    if problems:
        raise InvalidInput(problems)


def _summary(problems: list[FieldProblem]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"Invalid {first.field}: {first.message}{more}"


class NotFound(DomainError):
    """No such entity (HTTP 404)."""


class Conflict(DomainError):
    """The command cannot apply to the entity in its current state (HTTP 409)."""


class NameTaken(Conflict):
    """Another live entity of the same kind already has this name."""


class ConcurrentModification(Conflict):
    """Someone else changed the entity between our read and our write."""
