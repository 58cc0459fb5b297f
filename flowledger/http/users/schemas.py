"""Request and response bodies for users. A password goes in, never out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from flowledger.domain import users as rules
from flowledger.domain.users import UserStatus
from flowledger.http.api_keys.schemas import PermissionsField, RoleField

Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=rules.EMAIL_MAX_LENGTH,
        description="Where the user signs in with; unique among users that are not deleted, "
        "without regard to case.",
        examples=["ada@example.com"],
    ),
]
Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=rules.NAME_MAX_LENGTH,
        description="How the user is shown.",
        examples=["Ada Lovelace"],
    ),
]
Password = Annotated[
    str,
    Meta(
        min_length=rules.PASSWORD_MIN_LENGTH,
        max_length=rules.PASSWORD_MAX_LENGTH,
        description=f"{rules.PASSWORD_MIN_LENGTH} to {rules.PASSWORD_MAX_LENGTH} characters, "
        "not the email. Kept only as an argon2id hash; never returned, logged or recorded.",
        examples=["correct horse battery staple"],
    ),
]
UserRole = Annotated[
    str,
    Meta(
        max_length=32,
        description="viewer reads; operator also executes, cancels, retries and tests; editor "
        "also manages agents and workflows; admin may do everything. Spec 003's roles are "
        "ours under other names (a 422 says which): its developer is editor, its user is "
        "operator.",
        examples=["operator"],
    ),
]
SettableStatus = Annotated[
    Literal["active", "disabled"],
    Meta(
        description="`disabled`: the user is refused from the next request on (sessions and "
        "API keys alike) until set `active` again.",
        examples=["disabled"],
    ),
]


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new user. Spec 003's roles are ours under other names: `developer` is `editor`,
    `user` is `operator`."""

    email: Email
    name: Name
    role: UserRole
    password: Password


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What to change; fields left out stay as they are."""

    name: Name | None = None
    role: UserRole | None = None
    status: SettableStatus | None = None
    password: Password | None = None
    """A new password, set by an admin: every session of the user ends."""


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    """The caller's own new password; every session of the caller ends (sign in again)."""

    current_password: Annotated[str, Meta(min_length=1, max_length=rules.PASSWORD_MAX_LENGTH)]
    new_password: Password


class UserResponse(msgspec.Struct, kw_only=True):
    """A user as the users projection shows it (never a password or its hash)."""

    id: UUID
    email: str
    name: str
    role: RoleField
    status: Annotated[UserStatus, Meta(examples=["active"])]
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    updated_by: str | None
    version: int


class OwnApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new API key of the caller's user."""

    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=100,
            description="What the key is for.",
            examples=["my laptop's scripts"],
        ),
    ]
    role: RoleField | None = None
    """At most the user's role (left out: the caller's)."""
    expires_at: (
        Annotated[
            datetime,
            Meta(
                tz=True, description="When the key stops working (with a time zone); none: never."
            ),
        ]
        | None
    ) = None
    permissions: PermissionsField | None = None
