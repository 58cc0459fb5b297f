"""Request and response bodies for API keys. The secret appears once, in ``ApiKeyCreated``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from flowledger.domain import api_keys as rules
from flowledger.domain.access import Permission, Principal
from flowledger.domain.api_keys import ApiKey, ApiKeyStatus

RoleName = Literal["viewer", "operator", "editor", "admin"]
RoleField = Annotated[
    RoleName,
    Meta(
        description="viewer reads; operator also executes, cancels, retries and tests; editor "
        "also manages agents and workflows; admin may do everything (keys, webhooks, audit).",
        examples=["operator"],
    ),
]
StatusField = Annotated[ApiKeyStatus, Meta(examples=["active"])]
PermissionName = Literal["read", "execute", "signal", "manage", "admin"]
PermissionsField = Annotated[
    list[PermissionName],
    Meta(
        min_length=1,
        max_length=4,
        description="The only permissions the key may use, some of its role's (spec 003's "
        "per-key permissions); left out: all of its role's.",
        examples=[["read"]],
    ),
]
UserIdField = Annotated[
    UUID,
    Meta(
        description="The user the key belongs to and acts as: its role may not be above the "
        "user's (and is lowered with it), and it is refused once the user is disabled or "
        "deleted; deleting the user revokes it.",
    ),
]


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new API key."""

    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=rules.NAME_MAX_LENGTH,
            description="What the key is for, to recognise it in lists and audits.",
            examples=["ci-pipeline"],
        ),
    ]
    role: RoleField
    expires_at: (
        Annotated[
            datetime,
            Meta(
                tz=True,
                description="When the key stops working (with a time zone); none: never.",
                examples=["2030-01-01T00:00:00Z"],
            ),
        ]
        | None
    ) = None
    user_id: UserIdField | None = None
    permissions: PermissionsField | None = None


class ApiKeyResponse(msgspec.Struct, kw_only=True):
    """An API key as the api_keys projection shows it: never its secret."""

    id: UUID
    name: str
    role: RoleField
    prefix: Annotated[
        str,
        Meta(description="The key's first characters, to recognise it.", examples=["flk_3f9a1c2b"]),
    ]
    status: StatusField
    expires_at: datetime | None
    created_at: datetime
    created_by: Annotated[str, Meta(examples=["admin-env"])]
    revoked_at: datetime | None
    user_id: UUID | None = None
    permissions: list[PermissionName] | None = None


class ApiKeyCreated(ApiKeyResponse, kw_only=True):
    """The new key, with its secret: shown this once, store it now."""

    key: Annotated[
        str,
        Meta(
            description="The secret to send in `X-API-Key`. It is not stored and cannot be "
            "shown again.",
            examples=["flk_3f9a1c2b_7GQ0m1y2b3Xk4Zp5Wq6Rs7Tt8Uu9Vv0Ww1Xx2Yy3Zz4"],
        ),
    ]

    @classmethod
    def from_key(cls, api_key: ApiKey, secret: str, created_by: str) -> ApiKeyCreated:
        return cls(
            id=api_key.id,
            name=api_key.name,
            role=api_key.role.value,
            prefix=api_key.prefix,
            status="active",
            expires_at=api_key.expires_at,
            created_at=api_key.created_on,
            created_by=created_by,
            revoked_at=None,
            user_id=api_key.user_id,
            permissions=(
                [p.value for p in Permission if p in api_key.permissions]
                if api_key.permissions is not None
                else None
            ),
            key=secret,
        )


class WhoAmI(msgspec.Struct):
    """Who the server takes the caller for."""

    actor: Annotated[
        str,
        Meta(
            description="What the caller's changes record as their actor in events and the "
            "audit log: `user:<user id>` (a signed-in user, or a key of theirs), "
            "`key:<api key id>`, `jwt:<subject>` or `admin-env`.",
            examples=["key:0b7c5d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"],
        ),
    ]
    role: RoleField
    credential: Annotated[
        Literal["api_key", "jwt", "admin_env", "session"], Meta(examples=["api_key"])
    ]
    permissions: Annotated[
        list[str], Meta(description="What the caller may do: its role's, or fewer for a key.")
    ]
    key_id: UUID | None = None
    subject: str | None = None
    expires_at: datetime | None = None
    user_id: UUID | None = None
    session_id: UUID | None = None

    @classmethod
    def from_principal(cls, principal: Principal) -> WhoAmI:
        return cls(
            actor=principal.actor,
            role=principal.role.value,
            credential=principal.kind,
            permissions=sorted(p.value for p in principal.effective_permissions),
            key_id=principal.key_id,
            subject=principal.subject,
            expires_at=principal.expires_at,
            user_id=principal.user_id,
            session_id=principal.session_id,
        )
