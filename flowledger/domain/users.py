"""Users: people who sign in with an email and a password, and act in a role.

A user has an email (unique among users that are not deleted, compared without regard to
case), a name, a role (ours: viewer, operator, editor, admin; spec 003's are mapped onto
them, ADR 0018) and a status: ``active``, ``disabled`` (kept, but refused from the next
request on) or ``deleted``.

The password never reaches the domain: the write side is given its argon2id hash (made in
``flowledger.security.passwords``), and :func:`password_problems` is the rule a new password
must meet, checked before it is hashed. Events carry the hash, never the password; the hash is
masked wherever events are shown (``flowledger.domain.redaction``) and left out of the audit
log.

Signing a user out everywhere records the user's version at that moment: every session
started while the user was at an earlier version is over (``flowledger.domain.user_sessions``).
Disabling a user, resetting their password and deleting them sign them out everywhere too.
"""

from __future__ import annotations

import re
from typing import Final, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from flowledger.domain.access import Role, role_problem
from flowledger.domain.errors import Conflict, FieldProblem, InvalidInput, raise_if_any
from flowledger.domain.lifecycle import Deletable

UserStatus = Literal["active", "disabled", "deleted"]
SettableStatus = Literal["active", "disabled"]

EMAIL_MAX_LENGTH: Final = 254
NAME_MAX_LENGTH: Final = 100
PASSWORD_MIN_LENGTH: Final = 8
PASSWORD_MAX_LENGTH: Final = 256
"""NIST SP 800-63B: at least 8 characters, and long passphrases welcome; the cap only bounds
the hashing work one request can ask for."""
EMAIL_KIND: Final = "user email"
"""The kind of the unique-name claim a user holds on its email (``flowledger.domain.names``)."""
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f/]{1,189}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UserRefused(Conflict):
    """The user cannot do this in its current state (disabled or deleted)."""


def email_key(email: str) -> str:
    """What makes two emails the same user's: the address without regard to case."""
    return email.strip().casefold()


def email_problems(email: object) -> list[FieldProblem]:
    if not isinstance(email, str) or not _EMAIL.match(email) or len(email) > EMAIL_MAX_LENGTH:
        return [FieldProblem("email", "must be an email address (name@domain)")]
    return []


def name_problems(name: object) -> list[FieldProblem]:
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX_LENGTH:
        return [FieldProblem("name", f"must be 1 to {NAME_MAX_LENGTH} characters long")]
    if name != name.strip() or _CONTROL.search(name):
        return [FieldProblem("name", "must not have outer whitespace or control characters")]
    return []


def role_problems(role: object) -> list[FieldProblem]:
    problem = role_problem(role)
    return [FieldProblem("role", problem)] if problem else []


def password_problems(
    password: object, email: str | None = None, field: str = "password"
) -> list[FieldProblem]:
    """The rule a new password meets (checked before hashing; the password is not kept)."""
    if not isinstance(password, str) or not (
        PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH
    ):
        return [
            FieldProblem(
                field, f"must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long"
            )
        ]
    if not password.strip() or _CONTROL.search(password):
        return [FieldProblem(field, "must not be blank or hold control characters")]
    if email is not None and email_key(password) == email_key(email):
        return [FieldProblem(field, "must not be the email address")]
    return []


def _hash_problems(password_hash: object) -> list[FieldProblem]:
    if not isinstance(password_hash, str) or not password_hash.startswith("$argon2id$"):
        return [FieldProblem("password_hash", "must be an argon2id hash")]
    return []


class User(Deletable, Aggregate):
    """A person with a sign-in, a role and a status."""

    noun = "user"

    class Registered(Aggregate.Created):
        email: str
        name: str
        role: str
        password_hash: str
        audit_omits = ("password_hash",)

    class Renamed(Aggregate.Event):
        name: str

    class RoleChanged(Aggregate.Event):
        role: str

    class Disabled(Aggregate.Event):
        pass

    class Enabled(Aggregate.Event):
        pass

    class PasswordChanged(Aggregate.Event):
        password_hash: str
        audit_omits = ("password_hash",)

    class SignedOutEverywhere(Aggregate.Event):
        """Every session started before this version of the user is over."""

    Deleted = Deletable.Deleted

    @classmethod
    def register(cls, *, email: str, name: str, role: str, password_hash: str) -> User:
        problems = email_problems(email) + name_problems(name) + role_problems(role)
        raise_if_any(problems + _hash_problems(password_hash))
        return cls(email=email, name=name, role=role, password_hash=password_hash)

    @event(Registered)
    def __init__(self, email: str, name: str, role: str, password_hash: str) -> None:
        self.email = email
        self.name = name
        self.role = Role(role)
        self.password_hash = password_hash
        self.status: UserStatus = "active"
        self.signed_out_at_version = 0
        """Sessions started while the user was below this version are over."""

    @property
    def email_key(self) -> str:
        return email_key(self.email)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def _label(self) -> str:
        return repr(self.email)

    # -- changes ---------------------------------------------------------------------------

    def rename(self, name: str) -> None:
        self._refuse_if_deleted("be renamed")
        raise_if_any(name_problems(name))
        if name != self.name:
            self._rename(name)

    @event(Renamed)
    def _rename(self, name: str) -> None:
        self.name = name

    def change_role(self, role: str) -> None:
        self._refuse_if_deleted("change role")
        raise_if_any(role_problems(role))
        if role != self.role:
            self._change_role(role)

    @event(RoleChanged)
    def _change_role(self, role: str) -> None:
        self.role = Role(role)

    def switch(self, status: SettableStatus | None) -> None:
        """Enable or disable; None leaves the status as it is. Disabling signs out
        everywhere: the user is refused from the next request on."""
        self._refuse_if_deleted(f"be {status}")
        if status == "disabled" and self.status != "disabled":
            self._disable()
            self.sign_out_everywhere()
        elif status == "active" and self.status != "active":
            self._enable()

    @event(Disabled)
    def _disable(self) -> None:
        self.status = "disabled"

    @event(Enabled)
    def _enable(self) -> None:
        self.status = "active"

    def change_password(self, password_hash: str) -> None:
        """A new password (its hash); every session ends, so each must sign in again."""
        self._refuse_if_deleted("change password")
        raise_if_any(_hash_problems(password_hash))
        self._change_password(password_hash)
        self.sign_out_everywhere()

    @event(PasswordChanged)
    def _change_password(self, password_hash: str) -> None:
        self.password_hash = password_hash

    def sign_out_everywhere(self) -> None:
        self._refuse_if_deleted("be signed out")
        self._sign_out_everywhere()

    @event(SignedOutEverywhere)
    def _sign_out_everywhere(self) -> None:
        # The version this event gives the user: sessions started below it are over.
        self.signed_out_at_version = self.version + 1

    def delete(self) -> None:
        """Soft-delete; every session ends. Deleting twice records one deletion."""
        if self.is_active:
            self.sign_out_everywhere()
        super().delete()

    # -- sessions --------------------------------------------------------------------------

    def check_can_sign_in(self) -> None:
        if self.status != "active":
            raise UserRefused(f"user {self._label()} is {self.status}")

    def session_is_current(self, started_at_version: int) -> bool:
        """Whether a session started while the user was at ``started_at_version`` may go
        on: the user is active and has not been signed out everywhere since."""
        return self.is_active and started_at_version >= self.signed_out_at_version


def user_id_problems(user_id: object, field: str = "user_id") -> list[FieldProblem]:
    if not isinstance(user_id, UUID):
        return [FieldProblem(field, "must be a user id")]
    return []


def refuse_unless_user(user: User | None, user_id: UUID) -> User:
    """``user``, or InvalidInput naming ``user_id`` when there is no such user to act for."""
    if user is None:
        raise InvalidInput([FieldProblem("user_id", f"no user has the id {user_id}")])
    if user.is_deleted:
        raise InvalidInput([FieldProblem("user_id", f"user {user_id} is deleted")])
    return user
