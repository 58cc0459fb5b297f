"""``/api/v1/auth``: the OAuth2 token endpoint, sign-out and sign-out everywhere.

``POST /api/v1/auth/token`` takes what OAuth2 clients send (form-encoded; Swagger UI's
"Authorize" dialog among them): the password grant signs in and starts a session, the
refresh-token grant rotates the session's refresh token. Both answer a short-lived access
token (a JWT naming the session) and a refresh token. Every refusal is logged as ``AUTH``
without the password or any token; failed sign-ins are limited per account and per address.
"""

from __future__ import annotations

import base64
from contextlib import suppress
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import anyio.to_thread
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_204_NO_CONTENT,
    HTTP_400_BAD_REQUEST,
    HTTP_429_TOO_MANY_REQUESTS,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.commands.user_sessions import (
    EndSession,
    RefreshSession,
    SessionTokens,
    StartSession,
    end_session,
    refresh_session,
    session_of_refresh_token,
    start_session,
)
from flowledger.commands.users import SignOutEverywhere, sign_out_everywhere
from flowledger.domain.access import user_actor
from flowledger.domain.errors import DomainError, NotFound
from flowledger.domain.user_sessions import hash_token
from flowledger.eventlog.store import EventMetadata, EventStore
from flowledger.http.auth import principal_of
from flowledger.http.consistency import wait_for_position
from flowledger.http.context import correlation_id_of, metadata_for
from flowledger.http.errors import ErrorBody
from flowledger.http.permissions import Permission, public, requires
from flowledger.http.sessions.schemas import OAuthError, TokenRequest, TokenResponse
from flowledger.http.writes import WRITE_HEADERS, position_headers, run_command
from flowledger.observability.logs import aaa_logger
from flowledger.projections.tables import user_sessions
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from flowledger.security.sign_in import SignIn, SignInRefused

PROJECTION: Final = "users"
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TokenForm = Annotated[TokenRequest, Body(media_type=RequestEncodingType.URL_ENCODED)]
NOT_A_SESSION = {
    404: ResponseSpec(ErrorBody, description="The request came with no session's access token."),
    503: ResponseSpec(ErrorBody, description="Recorded, not yet effective; retry."),
}


def oauth_error(
    error: str, description: str, status: int = HTTP_400_BAD_REQUEST, **headers: str
) -> Response[Any]:
    body = OAuthError(detail=description, error=error, error_description=description)  # type: ignore[arg-type]
    return Response(body, status_code=status, headers={**NO_STORE, **headers})


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/token",
        operation_id="issueToken",
        summary="Sign in, or refresh (OAuth2 token endpoint)",
        description="Form-encoded, as OAuth2 clients send it. `grant_type=password` with "
        "`username` (the email) and `password` signs in: a new session. "
        "`grant_type=refresh_token` with `refresh_token` gives new tokens for the same session; "
        "the refresh token sent is used up (sent again, it ends the session). Refusals are "
        "OAuth2 errors (`invalid_grant`, ...); after too many failed sign-ins for an account or "
        "from an address, 429 with Retry-After.",
        status_code=HTTP_200_OK,
        responses={
            400: ResponseSpec(OAuthError, description="Refused: the OAuth2 error says why."),
            429: ResponseSpec(OAuthError, description="Too many failed sign-ins; see Retry-After."),
        },
        opt=public(),
    )
    async def token(
        self,
        request: Request[Any, Any, Any],
        data: TokenForm,
        runtime: NamedDependency[Runtime],
        store: NamedDependency[EventStore],
        settings: NamedDependency[Settings],
        sign_in: NamedDependency[SignIn],
    ) -> Response[Any]:
        log = aaa_logger("AUTH").bind(
            grant_type=data.grant_type,
            client=request.client.host if request.client else None,
            correlation_id=correlation_id_of(request),
        )
        if data.grant_type == "password":
            return await self._password(request, data, runtime, store, settings, sign_in, log)
        if data.grant_type == "refresh_token":
            return await self._refresh(request, data, runtime, store, settings, sign_in, log)
        log.warning("token refused", result="FAILURE", reason="unsupported_grant_type")
        if not data.grant_type:
            return oauth_error(
                "invalid_request",
                "grant_type is required, form-encoded: password or refresh_token.",
            )
        return oauth_error(
            "unsupported_grant_type", "grant_type must be password or refresh_token."
        )

    async def _password(
        self,
        request: Request[Any, Any, Any],
        data: TokenRequest,
        runtime: Runtime,
        store: EventStore,
        settings: Settings,
        sign_in: SignIn,
        log: Any,
    ) -> Response[Any]:
        username, password = data.username, data.password
        if not username or not password:  # older Swagger UIs send them as Basic credentials
            username, password = basic_credentials(request.headers.get("Authorization"))
        if not username or not password:
            log.warning("sign-in refused", result="FAILURE", reason="missing_credentials")
            return oauth_error("invalid_request", "username (the email) and password are needed.")
        address = request.client.host if request.client else None
        log = log.bind(username=username)
        try:
            user = await sign_in.check_password(
                runtime.async_engine, username, password, address, datetime.now(UTC)
            )
        except SignInRefused as refused:
            log.warning("sign-in refused", result="FAILURE", reason=refused.reason)
            if refused.retry_after is not None:
                wait = str(max(1, int(refused.retry_after.total_seconds())))
                return oauth_error(
                    "temporarily_unavailable",
                    refused.detail,
                    HTTP_429_TOO_MANY_REQUESTS,
                    **{"Retry-After": wait},
                )
            return oauth_error("invalid_grant", refused.detail)
        meta = _as_user(request, user.user_id)
        command = StartSession(user_id=user.user_id, lifetime_s=sign_in.settings.session_ttl_s)
        try:
            outcome = await run_command(start_session, store, command, meta)
        except DomainError as refused:  # disabled or deleted meanwhile
            log.warning("sign-in refused", result="FAILURE", reason="user_not_active")
            return oauth_error("invalid_grant", refused.detail)
        log.info(
            "signed in", result="SUCCESS", actor=meta.actor, session_id=str(outcome.aggregate.id)
        )
        return await _tokens(runtime, settings, sign_in, outcome)

    async def _refresh(
        self,
        request: Request[Any, Any, Any],
        data: TokenRequest,
        runtime: Runtime,
        store: EventStore,
        settings: Settings,
        sign_in: SignIn,
        log: Any,
    ) -> Response[Any]:
        session_id = session_of_refresh_token(data.refresh_token or "")
        user_id = await _user_of_session(runtime, session_id) if session_id else None
        if session_id is None or user_id is None:
            log.warning("refresh refused", result="FAILURE", reason="unknown_refresh_token")
            return oauth_error("invalid_grant", "The refresh token is not valid.")
        command = RefreshSession(
            session_id=session_id, presented_hash=hash_token(data.refresh_token or "")
        )
        meta = _as_user(request, user_id)
        try:
            outcome = await run_command(refresh_session, store, command, meta)
        except DomainError as refused:
            reason = getattr(refused, "reason", type(refused).__name__)
            log.warning("refresh refused", result="FAILURE", reason=reason, actor=meta.actor)
            # A refusal may have ended the session (a refresh token used twice): answer once
            # that holds, so the session's access tokens are refused from the next request on.
            async with runtime.async_engine.connect() as conn:
                with suppress(HTTPException):
                    await _effective(conn, store, None, settings)
            return oauth_error("invalid_grant", refused.detail)
        log.info("refreshed", result="SUCCESS", actor=meta.actor, session_id=str(session_id))
        return await _tokens(runtime, settings, sign_in, outcome)

    @post(
        "/logout",
        operation_id="signOut",
        summary="Sign out",
        description="Ends the session of the access token sent: its refresh token and every "
        "access token of it are refused from the next request on, by every API process.",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        responses=NOT_A_SESSION,
        opt=requires(Permission.READ),
    )
    async def logout(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        principal = principal_of(request)
        if principal is None or principal.session_id is None:
            raise NotFound(
                "No session to sign out of: this request came with an API key or another "
                "token, not a signed-in session's access token."
            )
        command = EndSession(session_id=principal.session_id)
        outcome = await run_command(end_session, store, command, meta)
        await _effective(db, store, outcome.position, settings)
        aaa_logger("AUTH").info(
            "signed out",
            result="SUCCESS",
            actor=principal.actor,
            session_id=str(principal.session_id),
            correlation_id=meta.correlation_id,
        )
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))

    @post(
        "/logout-all",
        operation_id="signOutEverywhere",
        summary="Sign out everywhere",
        description="Ends every session of the caller's user (every browser and device): "
        "their tokens are refused from the next request on. The user's API keys keep working.",
        status_code=HTTP_204_NO_CONTENT,
        response_headers=WRITE_HEADERS,
        responses=NOT_A_SESSION,
        opt=requires(Permission.READ),
    )
    async def logout_everywhere(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[EventStore],
        meta: NamedDependency[EventMetadata],
        db: NamedDependency[AsyncConnection],
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        principal = principal_of(request)
        if principal is None or principal.user_id is None:
            raise NotFound(
                "No user to sign out: this request's credential is not a user's (sign in, or "
                "use one of a user's API keys)."
            )
        command = SignOutEverywhere(user_id=principal.user_id)
        outcome = await run_command(sign_out_everywhere, store, command, meta)
        await _effective(db, store, outcome.position, settings)
        aaa_logger("AUTH").info(
            "signed out everywhere",
            result="SUCCESS",
            actor=principal.actor,
            correlation_id=meta.correlation_id,
        )
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers=position_headers(outcome))


def basic_credentials(authorization: str | None) -> tuple[str | None, str | None]:
    """The user name and password of an ``Authorization: Basic`` header, if it has both."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None, None
    username, _, password = decoded.partition(":")
    return (username, password) if username and password else (None, None)


def _as_user(request: Request[Any, Any, Any], user_id: Any) -> EventMetadata:
    """The stamp of events a sign-in or refresh records: the user's own."""
    meta = metadata_for(request)
    return EventMetadata(
        actor=user_actor(user_id), correlation_id=meta.correlation_id, traceparent=meta.traceparent
    )


async def _user_of_session(runtime: Runtime, session_id: Any) -> Any:
    async with runtime.async_engine.connect() as conn:
        found = await conn.execute(
            select(user_sessions.c.user_id).where(user_sessions.c.id == session_id)
        )
        return found.scalar_one_or_none()


async def _effective(
    db: AsyncConnection, store: EventStore, position: int | None, settings: Settings
) -> None:
    effective_at = position or await anyio.to_thread.run_sync(store.head)
    await wait_for_position(db, PROJECTION, effective_at, settings.read_wait_timeout_s)


async def _tokens(
    runtime: Runtime, settings: Settings, sign_in: SignIn, outcome: SessionTokens
) -> Response[Any]:
    """The answer of a sign-in or refresh, once the session is projected (so its access token
    works at once; if the projection lags past the read wait, moments later)."""
    session = outcome.aggregate
    async with runtime.async_engine.connect() as conn:
        with suppress(HTTPException):
            await wait_for_position(
                conn, PROJECTION, outcome.position, settings.read_wait_timeout_s
            )
    now = datetime.now(UTC)
    access = await sign_in.tokens.issue(
        runtime.async_engine,
        user_id=session.user_id,
        session_id=session.id,
        role=outcome.user.role.value,
        session_expires_at=session.expires_at,
        now=now,
    )
    body = TokenResponse(
        access_token=access.token,
        token_type="bearer",  # noqa: S106  (the OAuth2 token type)
        expires_in=access.expires_in,
        refresh_token=outcome.refresh_token,
        refresh_token_expires_in=max(0, int((session.expires_at - now).total_seconds())),
    )
    return Response(body, status_code=HTTP_200_OK, headers=NO_STORE)
