"""``/api/v1/users`` (admin): create, list, read, update, delete users and sign them out
everywhere; ``/api/v1/users/me``: the caller's own user, password and API keys.

Every change that takes access away (disabling, a new password, deleting, signing out) answers
once the users projection has applied it, so the user is refused from the very next request on
every API process (503 with Retry-After if the projection lags past the read wait timeout;
retrying is safe).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated, Any
from uuid import UUID

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.commands import Outcome
from flowledger.commands.api_keys import IssueApiKey, RevokeApiKey, issue_api_key, revoke_api_key
from flowledger.commands.users import (
    ChangePassword,
    DeleteUser,
    RegisterUser,
    SignOutEverywhere,
    UpdateUser,
    change_password,
    delete_user,
    register_user,
    sign_out_everywhere,
    update_user,
)
from flowledger.domain.access import Principal
from flowledger.domain.errors import FieldProblem, InvalidInput, NotFound, raise_if_any
from flowledger.domain.users import password_problems
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.api_keys import queries as key_queries
from flowledger.http.api_keys.schemas import ApiKeyCreated, ApiKeyResponse
from flowledger.http.auth import principal_of
from flowledger.http.consistency import MinPosition, wait_for_position
from flowledger.http.errors import ErrorBody
from flowledger.http.pagination import Page, PageNumber, PageSize, SortOrder
from flowledger.http.permissions import Permission, requires
from flowledger.http.users import queries
from flowledger.http.users.queries import UserSort, UserStatusFilter
from flowledger.http.users.schemas import (
    OwnApiKeyCreate,
    PasswordChange,
    UserCreate,
    UserResponse,
    UserUpdate,
)
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.runtime.settings import Settings
from flowledger.security.passwords import hash_password_async, verify_password_async

UserId = Annotated[UUID, Parameter(description="The user's id.")]
KeyId = Annotated[UUID, Parameter(description="The API key's id.")]
PROJECTION = "users"
NOT_FOUND = {404: ResponseSpec(ErrorBody, description="No user has this id.")}
NOT_A_USER = {
    404: ResponseSpec(
        ErrorBody,
        description="The credential is not a user's (an API key of "
        "its own, an identity provider's JWT, the admin key).",
    ),
}
EFFECTIVE = {503: ResponseSpec(ErrorBody, description="Recorded, not yet effective; retry.")}


def caller(request: Request[Any, Any, Any]) -> Principal:
    principal = principal_of(request)
    assert principal is not None  # the guard let only authenticated callers in
    return principal


def callers_user(request: Request[Any, Any, Any]) -> UUID:
    """The user the caller is (signed in, or with one of the user's keys); 404 otherwise."""
    principal = caller(request)
    if principal.user_id is None:
        raise NotFound(
            f"No user: this request's credential ({principal.actor}) is not a user's. Sign in "
            "with a user's email and password, or use one of a user's API keys."
        )
    return principal.user_id


async def effective(
    db: AsyncConnection, store: EventStore, outcome: Outcome[Any], settings: Settings
) -> None:
    """Wait until the users projection has applied the outcome (or, if it changed nothing,
    everything recorded so far), so that the next request sees it on every API process."""
    position = outcome.position or await anyio.to_thread.run_sync(store.head)
    await wait_for_position(db, PROJECTION, position, settings.read_wait_timeout_s)


async def read_back(db: AsyncConnection, user_id: UUID) -> UserResponse:
    found = await queries.find_user(db, user_id)
    if found is None:
        raise NotFound(f"user {user_id} not found")
    return found


class UserController(Controller):
    path = "/api/v1/users"
    tags = ["users"]

    @post(
        "/",
        operation_id="createUser",
        summary="Create a user",
        description="A user who signs in with this email and password (`POST /api/v1/auth/"
        "token`) and acts in this role. 409 when a user that is not deleted has the email "
        "(without regard to case). The answer comes once the user can sign in.",
        status_code=HTTP_201_CREATED,
        response_headers=WRITE_HEADERS,
        opt=requires(Permission.ADMIN),
    )
    async def create(
        self,
        data: JSONBody[UserCreate],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[UserResponse]:
        raise_if_any(password_problems(data.password, data.email))
        command = RegisterUser(
            email=data.email,
            name=data.name,
            role=data.role,
            password_hash=await hash_password_async(data.password),
        )
        outcome = await run_command(register_user, store, command, meta)
        with suppress(HTTPException):  # created either way; it signs in moments later
            await wait_for_position(db, PROJECTION, outcome.position, settings.read_wait_timeout_s)
        headers = position_headers(outcome)
        headers["Location"] = f"{self.path}/{outcome.aggregate.id}"
        user = outcome.aggregate
        body = UserResponse(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role.value,
            status=user.status,
            created_at=user.created_on,
            updated_at=user.modified_on,
            created_by=meta.actor,
            updated_by=meta.actor,
            version=user.version,
        )
        return Response(body, headers=headers)

    @get(
        "/",
        operation_id="listUsers",
        summary="List users",
        description="Users that are not deleted (or those of `status`), filtered and sorted.",
        opt=requires(Permission.ADMIN),
    )
    async def list_users(
        self,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        status: Annotated[
            UserStatusFilter | None,
            Parameter(description="Only users with this status (`all`: deleted ones too)."),
        ] = None,
        role: Annotated[
            str | None, Parameter(description="Only users with this role.", max_length=16)
        ] = None,
        email: Annotated[
            str | None,
            Parameter(description="Only users whose email holds this text.", max_length=254),
        ] = None,
        sort: Annotated[UserSort, Parameter(description="Field to sort by.")] = "created_at",
        order: SortOrder = "asc",
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[UserResponse]:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        return await queries.list_users(
            db,
            status=status,
            role=role,
            email=email,
            sort=sort,
            order=order,
            page=page,
            page_size=page_size,
        )

    @get(
        "/me",
        operation_id="getMyUser",
        summary="Read the caller's user",
        description="The user the caller is: signed in, or with one of the user's API keys.",
        responses=NOT_A_USER,
        opt=requires(Permission.READ),
    )
    async def me(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> UserResponse:
        user_id = callers_user(request)
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        return await read_back(db, user_id)

    @put(
        "/me/password",
        operation_id="changeMyPassword",
        summary="Change the caller's password",
        description="Needs the current password. Every session of the user ends, this one "
        "included: sign in again with the new password (the user's API keys keep working).",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        responses={**NOT_A_USER, **EFFECTIVE},
        opt=requires(Permission.READ),
    )
    async def change_my_password(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PasswordChange],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        user_id = callers_user(request)
        user = await read_back(db, user_id)
        raise_if_any(password_problems(data.new_password, user.email, "new_password"))
        current = await queries.password_hash(db, user_id)
        await db.rollback()
        if not await verify_password_async(current, data.current_password):
            raise InvalidInput([FieldProblem("current_password", "is not the user's password")])
        command = ChangePassword(
            user_id=user_id, password_hash=await hash_password_async(data.new_password)
        )
        outcome = await run_command(change_password, store, command, meta)
        await effective(db, store, outcome, settings)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))

    @get(
        "/me/api-keys",
        operation_id="listMyApiKeys",
        summary="List the caller's API keys",
        description="The API keys of the caller's user (never a secret).",
        responses=NOT_A_USER,
        opt=requires(Permission.READ),
    )
    async def my_keys(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
        page: PageNumber = 1,
        page_size: PageSize = 20,
    ) -> Page[ApiKeyResponse]:
        user_id = callers_user(request)
        await wait_for_position(db, "api_keys", min_position, settings.read_wait_timeout_s)
        return await key_queries.list_api_keys(
            db,
            status=None,
            role=None,
            user_id=user_id,
            sort="created_at",
            order="asc",
            page=page,
            page_size=page_size,
        )

    @post(
        "/me/api-keys",
        operation_id="createMyApiKey",
        summary="Create an API key of the caller's",
        description="A key that acts as the caller's user, for scripts: with at most the "
        "user's role, and only permissions the caller has. The secret (`key`) is in this "
        "answer only.",
        status_code=HTTP_201_CREATED,
        response_headers=WRITE_HEADERS,
        responses=NOT_A_USER,
        opt=requires(Permission.READ),
    )
    async def create_my_key(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[OwnApiKeyCreate],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[ApiKeyCreated]:
        user_id = callers_user(request)
        principal = caller(request)
        allowed = {p.value for p in principal.effective_permissions}
        wanted: list[str] | None = list(data.permissions) if data.permissions else None
        if wanted is None and principal.permissions is not None:
            wanted = sorted(allowed)  # a narrowed caller makes keys no wider than itself
        if wanted is not None and not set(wanted) <= allowed:
            raise InvalidInput(
                [FieldProblem("permissions", f"must be among the caller's: {sorted(allowed)}")]
            )
        command = IssueApiKey(
            name=data.name,
            role=data.role or principal.role.value,
            expires_at=data.expires_at,
            user_id=user_id,
            permissions=wanted,
        )
        outcome = await run_command(issue_api_key, store, command, meta)
        with suppress(HTTPException):  # never lose the secret: answer even if the wait fails
            await wait_for_position(db, "api_keys", outcome.position, settings.read_wait_timeout_s)
        headers = position_headers(outcome)
        headers["Cache-Control"] = "no-store"
        body = ApiKeyCreated.from_key(outcome.aggregate, outcome.key, created_by=meta.actor)
        return Response(body, headers=headers)

    @delete(
        "/me/api-keys/{key_id:uuid}",
        operation_id="revokeMyApiKey",
        summary="Revoke one of the caller's API keys",
        description="Refused from its next request on, by every API process.",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        responses={**NOT_A_USER, **EFFECTIVE},
        opt=requires(Permission.READ),
    )
    async def revoke_my_key(
        self,
        request: Request[Any, Any, Any],
        key_id: KeyId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        user_id = callers_user(request)
        key = await key_queries.find_api_key(db, key_id)
        if key is None or key.user_id != user_id:
            raise NotFound(f"api key {key_id} not found among the caller's")
        outcome = await run_command(revoke_api_key, store, RevokeApiKey(key_id=key_id), meta)
        position = outcome.position or await anyio.to_thread.run_sync(store.head)
        await wait_for_position(db, "api_keys", position, settings.read_wait_timeout_s)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))

    @get(
        "/{user_id:uuid}",
        operation_id="getUser",
        summary="Read a user",
        responses=NOT_FOUND,
        opt=requires(Permission.ADMIN),
    )
    async def get_user(
        self,
        user_id: UserId,
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
        min_position: MinPosition = None,
    ) -> UserResponse:
        await wait_for_position(db, PROJECTION, min_position, settings.read_wait_timeout_s)
        return await read_back(db, user_id)

    @put(
        "/{user_id:uuid}",
        operation_id="updateUser",
        summary="Update a user",
        description="Change the name, the role, the status (`disabled` refuses the user from "
        "the next request on) or set a new password (every session of the user ends). The "
        "answer comes once the change holds on every API process.",
        response_headers=WRITE_HEADERS,
        responses={**NOT_FOUND, **EFFECTIVE},
        opt=requires(Permission.ADMIN),
    )
    async def update(
        self,
        user_id: UserId,
        data: JSONBody[UserUpdate],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[UserResponse]:
        password_hash = None
        if data.password is not None:
            user = await read_back(db, user_id)
            raise_if_any(password_problems(data.password, user.email))
            password_hash = await hash_password_async(data.password)
        command = UpdateUser(
            user_id=user_id,
            name=data.name,
            role=data.role,
            status=data.status,
            password_hash=password_hash,
        )
        outcome = await run_command(update_user, store, command, meta)
        await effective(db, store, outcome, settings)
        return Response(await read_back(db, user_id), headers=position_headers(outcome))

    @delete(
        "/{user_id:uuid}",
        operation_id="deleteUser",
        summary="Delete a user",
        description="The user is refused from the next request on; their sessions end and "
        "their API keys are revoked. The email may be used again. Deleting a deleted user "
        "changes nothing.",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        responses={**NOT_FOUND, **EFFECTIVE},
        opt=requires(Permission.ADMIN),
    )
    async def remove(
        self,
        user_id: UserId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        key_ids = await queries.live_key_ids(db, user_id)
        await db.rollback()
        command = DeleteUser(user_id=user_id, key_ids=key_ids)
        outcome = await run_command(delete_user, store, command, meta)
        await effective(db, store, outcome, settings)
        if key_ids and outcome.position:
            await wait_for_position(db, "api_keys", outcome.position, settings.read_wait_timeout_s)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))

    @delete(
        "/{user_id:uuid}/sessions",
        operation_id="signUserOutEverywhere",
        summary="Sign a user out everywhere",
        description="Every session of the user ends (their access and refresh tokens are "
        "refused from the next request on); their API keys keep working.",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        responses={**NOT_FOUND, **EFFECTIVE},
        opt=requires(Permission.ADMIN),
    )
    async def sign_out(
        self,
        user_id: UserId,
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        command = SignOutEverywhere(user_id=user_id)
        outcome = await run_command(sign_out_everywhere, store, command, meta)
        await effective(db, store, outcome, settings)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))
