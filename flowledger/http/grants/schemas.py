"""Request and response bodies of the grants resource."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final
from uuid import UUID

import msgspec
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import Example
from litestar.params import Body, Parameter
from msgspec import Meta

from flowledger.domain.grants import PRINCIPAL_FORMS, PRINCIPAL_MAX_LENGTH

PRINCIPAL_DESCRIPTION: Final = (
    f"Who the grant is for: {PRINCIPAL_FORMS}. `key:` and `jwt:` name one caller (the `actor` "
    "of `GET /api/v1/whoami`); `role:operator` is every caller whose role is operator or "
    "higher. A JWT subject containing `/` cannot be named."
)
PRINCIPAL_EXAMPLES: Final = [
    "key:6f1c2a9e-3b7d-4e2f-9a51-0c8d7e6b5a43",
    "jwt:alice@example.com",
    "role:operator",
]
PrincipalParam = Annotated[
    str,
    Parameter(
        description=PRINCIPAL_DESCRIPTION,
        min_length=5,
        max_length=PRINCIPAL_MAX_LENGTH,
        examples=[Example(summary=p.split(":")[0], value=p) for p in PRINCIPAL_EXAMPLES],
    ),
]


class WorkflowGrant(msgspec.Struct, kw_only=True):
    """What one principal may do on a workflow besides its role's ceiling."""

    workflow_id: UUID
    principal: Annotated[str, Meta(description=PRINCIPAL_DESCRIPTION, examples=["role:operator"])]
    can_view: Annotated[
        bool, Meta(description="Read the workflow, its versions and its runs.", examples=[True])
    ]
    can_execute: Annotated[
        bool,
        Meta(
            description="Execute and test the workflow, cancel and retry its runs.",
            examples=[False],
        ),
    ]
    granted_at: datetime
    granted_by: Annotated[
        str | None, Meta(description="Who set this grant.", examples=["key:0e9d…"])
    ]


class GrantChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The principal's access from now on (it replaces its grant, if any)."""

    can_view: Annotated[
        bool,
        Meta(description="Read the workflow, its versions and its runs.", examples=[True]),
    ] = True
    can_execute: Annotated[
        bool,
        Meta(
            description="Execute and test the workflow, cancel and retry its runs; needs "
            "`can_view`.",
            examples=[True],
        ),
    ] = False


GrantChangeBody = Annotated[
    GrantChange,
    Body(
        media_type=RequestEncodingType.JSON,
        examples=[
            Example(summary="View only", value={"can_view": True}),
            Example(summary="View and execute", value={"can_view": True, "can_execute": True}),
        ],
    ),
]


class OwnerChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The workflow's new owner."""

    owner: Annotated[
        str,
        Meta(
            min_length=5,
            max_length=PRINCIPAL_MAX_LENGTH,
            description="One caller: `key:<api key id>` or `jwt:<subject>`.",
            examples=["jwt:bob@example.com"],
        ),
    ]
