"""``/api/v1/api-keys`` (admin): issue, list, read and revoke API keys; ``/api/v1/whoami``."""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated, Any
from uuid import UUID

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.commands.api_keys import IssueApiKey, RevokeApiKey, issue_api_key, revoke_api_key
from flowledger.domain.access import Principal
from flowledger.domain.errors import NotFound
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.api_keys import queries
from flowledger.http.api_keys.queries import ApiKeySort, ApiKeyStatusFilter
from flowledger.http.api_keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyResponse,
    RoleName,
    WhoAmI,
)
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.errors import ErrorBody
from flowledger.http.pagination import Page, PageNumber, PageSize, SortOrder
from flowledger.http.permissions import Permission, requires
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.runtime.settings import Settings

KeyId = Annotated[UUID, Parameter(description="The API key's id.")]
NOT_FOUND = {404: ResponseSpec(ErrorBody, description="No API key has this id.")}


class ApiKeyController(Controller):
    path = "/api/v1/api-keys"
    tags = ["api-keys"]

    @post(
        "/",
        operation_id="createApiKey",
        summary="Create an API key",
        description="Issues a key with a role and an optional expiry, for a user (it then acts "
        "as the user, with at most the user's role) or of its own, with all its role's "
        "permissions or only some. The answer holds the secret (`key`) this once: only its "
        "hash is stored. It comes once the key works (or, if the api_keys projection lags past "
        "the read wait timeout, moments before).",
        status_code=HTTP_201_CREATED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.ADMIN),
    )
    async def create(
        self,
        data: JSONBody[ApiKeyCreate],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[ApiKeyCreated]:
        command = IssueApiKey(
            name=data.name,
            role=data.role,
            expires_at=data.expires_at,
            user_id=data.user_id,
            permissions=list(data.permissions) if data.permissions is not None else None,
        )
        outcome = await run_command(issue_api_key, store, command, meta)
        with suppress(HTTPException):  # never lose the secret: answer even if the wait fails
            await wait_for_position(db, "api_keys", outcome.position, settings.read_wait_timeout_s)
        headers = position_headers(outcome)
        headers["Location"] = f"{self.path}/{outcome.aggregate.id}"
        headers["Cache-Control"] = "no-store"
        body = ApiKeyCreated.from_key(outcome.aggregate, outcome.key, created_by=meta.actor)
        return Response(body, headers=headers)

    @get(
        "/",
        operation_id="listApiKeys",
        summary="List API keys",
        description="Every key with its prefix, role and status (never a secret).",
        opt=requires(Permission.ADMIN),
    )
    async def list_keys(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        status: Annotated[
            ApiKeyStatusFilter | None, Parameter(description="Only keys with this status.")
        ] = None,
        role: Annotated[RoleName | None, Parameter(description="Only keys with this role.")] = None,
        user_id: Annotated[
            UUID | None, Parameter(description="Only the keys of this user.")
        ] = None,
        sort: Annotated[ApiKeySort, Parameter(description="Field to sort by.")] = "created_at",
        order: SortOrder = "asc",
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[ApiKeyResponse]:
        await wait_for_position(db, "api_keys", min_position, settings.read_wait_timeout_s)
        return await queries.list_api_keys(
            db,
            status=status,
            role=role,
            user_id=user_id,
            sort=sort,
            order=order,
            page=page,
            page_size=page_size,
        )

    @get(
        "/{key_id:uuid}",
        operation_id="getApiKey",
        summary="Read an API key",
        responses=NOT_FOUND,
        opt=requires(Permission.ADMIN),
    )
    async def get_key(
        self,
        key_id: KeyId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> ApiKeyResponse:
        await wait_for_position(db, "api_keys", min_position, settings.read_wait_timeout_s)
        found = await queries.find_api_key(db, key_id)
        if found is None:
            raise NotFound(f"api key {key_id} not found")
        return found

    @delete(
        "/{key_id:uuid}",
        operation_id="revokeApiKey",
        summary="Revoke an API key",
        description="The key is refused from its very next request, by every API process: "
        "the answer comes once the api_keys projection has applied the revocation (503 with "
        "Retry-After if it has not within the read wait timeout; retrying is safe). Revoking "
        "a revoked key changes nothing.",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        responses={
            **NOT_FOUND,
            503: ResponseSpec(ErrorBody, description="Revoked, not yet effective; retry."),
        },
        opt=requires(Permission.ADMIN),
    )
    async def revoke(
        self,
        key_id: KeyId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        outcome = await run_command(revoke_api_key, store, RevokeApiKey(key_id=key_id), meta)
        effective_at = outcome.position or await anyio.to_thread.run_sync(store.head)
        await wait_for_position(db, "api_keys", effective_at, settings.read_wait_timeout_s)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))


@get(
    "/api/v1/whoami",
    operation_id="whoAmI",
    summary="Who am I",
    description="The caller's actor, role and permissions, as the server sees its credential.",
    tags=["api-keys"],
    opt=requires(Permission.READ),
    sync_to_thread=False,
)
def whoami(request: Request[Any, Any, Any]) -> WhoAmI:
    principal = request.scope.get("user")
    assert isinstance(principal, Principal)  # the guard let only authenticated callers in
    return WhoAmI.from_principal(principal)
