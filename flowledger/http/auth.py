"""Authentication, authorisation and rate limiting, wired with Litestar's own pieces.

- :class:`CredentialMiddleware` (an ``AbstractAuthenticationMiddleware``) turns ``X-API-Key``
  or ``Authorization: Bearer <JWT>`` into a :class:`Principal` in ``scope["user"]``, or answers
  401. Public paths (``FLOWLEDGER_PUBLIC_PATHS``) skip it.
- The :meth:`ApiSecurity.authorise` guard reads the permission each route declares
  (``opt=requires(...)``) and answers 403 when the principal's role (or a resource rule) does
  not allow it.
- :meth:`ApiSecurity.secure` runs once on the built app: it refuses to start when an
  ``/api/v1`` route declares no permission (but the token endpoint, declared ``public()``),
  and documents the security schemes (an API key; OAuth2's password flow at the token
  endpoint, which Swagger UI's "Authorize" uses; an identity provider's JWTs when configured)
  and the 401/403/429 answers on every protected operation of the OpenAPI document.
- Litestar's ``RateLimitMiddleware`` counts requests per principal (per API process).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    ImproperlyConfiguredException,
    NotAuthorizedException,
    PermissionDeniedException,
)
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OAuthFlow,
    OAuthFlows,
    SecurityRequirement,
    SecurityScheme,
)
from litestar.routes import BaseRoute, HTTPRoute
from litestar.types import ASGIApp, Guard

from flowledger.domain.access import Permission, Principal
from flowledger.http.context import correlation_id_of
from flowledger.http.errors import ErrorBody
from flowledger.http.permissions import PERMISSION_OPT, PUBLIC_OPT, RESOURCE_OPT
from flowledger.observability.logs import aaa_debug_enabled, aaa_logger
from flowledger.runtime.settings import Settings
from flowledger.security.credentials import Authenticator, CredentialRefused
from flowledger.security.policy import AccessPolicy, ResourceRef
from flowledger.security.settings import SecuritySettings
from flowledger.security.sign_in import SignIn

API_PREFIX: Final = "/api/"
HOOKS_PATTERN: Final = "^/hooks/"
"""Inbound webhooks authenticate with their trigger's own credentials, never an API key."""
API_KEY_HEADER: Final = "X-API-Key"
API_KEY_SCHEME: Final = "ApiKey"
BEARER_SCHEME: Final = "BearerJWT"
OAUTH2_SCHEME: Final = "OAuth2Password"
TOKEN_URL: Final = "/api/v1/auth/token"  # noqa: S105  (a path)


def public_path_patterns(paths: Sequence[str]) -> list[str]:
    """Regular expressions for the public paths (``/x`` exactly; ``/x/*`` as a prefix)."""
    return [f"^{re.escape(p[:-1])}" if p.endswith("*") else f"^{re.escape(p)}$" for p in paths]


def _runtime(connection: ASGIConnection[Any, Any, Any, Any]) -> Any:
    return connection.app.state.runtime


def _runtime_engine(connection: ASGIConnection[Any, Any, Any, Any]) -> Any:
    return _runtime(connection).async_engine


class CredentialMiddleware(AbstractAuthenticationMiddleware):
    """``X-API-Key`` or ``Authorization: Bearer``; a refused credential is a 401."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, exclude: list[str]) -> None:
        super().__init__(app, exclude=exclude or None)
        self.authenticator = authenticator

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        try:
            principal = await self._principal(connection)
        except CredentialRefused as refused:
            _auth_log(connection).warning(
                "authentication refused", result="FAILURE", reason=refused.reason
            )
            raise NotAuthorizedException(detail=refused.detail) from None
        if aaa_debug_enabled():
            _auth_log(connection).debug(
                "authenticated",
                result="SUCCESS",
                actor=principal.actor,
                role=principal.role.value,
                credential=principal.kind,
            )
        return AuthenticationResult(user=principal, auth=principal.kind)

    async def _principal(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
        api_key = connection.headers.get(API_KEY_HEADER)
        authorization = connection.headers.get("Authorization")
        if api_key is not None and authorization is not None:
            raise CredentialRefused(
                f"Send one credential: {API_KEY_HEADER} or Authorization, not both.", "ambiguous"
            )
        if api_key is not None:
            return await self.authenticator.api_key(
                api_key.strip(), _runtime_engine(connection), datetime.now(UTC)
            )
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise CredentialRefused(
                    "The Authorization header must be `Bearer <token>`.", "scheme"
                )
            return await self.authenticator.bearer(
                token.strip(), _runtime_engine(connection), datetime.now(UTC)
            )
        raise CredentialRefused(
            f"Authentication required: send an API key in {API_KEY_HEADER} "
            "or a bearer token in Authorization.",
            "missing",
        )


def _auth_log(connection: ASGIConnection[Any, Any, Any, Any]) -> structlog.stdlib.BoundLogger:
    return aaa_logger("AUTH").bind(
        method=connection.scope.get("method"),
        path=connection.scope["path"],
        client=connection.client.host if connection.client else None,
        correlation_id=correlation_id_of(connection),
    )


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


def rate_limit_identity(request: Request[Any, Any, Any]) -> str:
    """Requests are counted per principal (its actor); unauthenticated ones per address."""
    principal = principal_of(request)
    return principal.actor if principal else f"address:{get_remote_address(request)}"


def _handlers_of(route: BaseRoute) -> list[BaseRouteHandler]:
    if isinstance(route, HTTPRoute):
        return list(route.route_handlers)
    return [getattr(route, "route_handler")]  # noqa: B009  (ASGI and websocket routes)


class ApiSecurity:
    """Everything the app needs to authenticate, authorise and rate-limit requests."""

    def __init__(self, settings: Settings, policy: AccessPolicy | None = None) -> None:
        self.settings = SecuritySettings.from_settings(settings)
        self.sign_in = SignIn.from_settings(settings)
        self.authenticator = Authenticator(
            self.settings, settings.admin_api_key, self.sign_in.tokens
        )
        self.policy = policy or AccessPolicy()
        self.public_patterns = [
            *public_path_patterns(self.settings.public_paths),
            HOOKS_PATTERN,
        ]
        self._public = re.compile("|".join(self.public_patterns)) if self.public_patterns else None

    def is_public(self, path: str) -> bool:
        return bool(self._public and self._public.search(path))

    # -- wiring ------------------------------------------------------------------------------

    @property
    def middleware(self) -> list[DefineMiddleware]:
        """Authentication, then rate limiting (which counts per authenticated principal)."""
        stack = [
            DefineMiddleware(
                CredentialMiddleware,
                authenticator=self.authenticator,
                exclude=self.public_patterns,
            )
        ]
        if self.settings.rate_limit is not None:
            stack.append(
                RateLimitConfig(
                    rate_limit=self.settings.rate_limit,
                    identifier_for_request=rate_limit_identity,
                    exclude=self.public_patterns or None,
                ).middleware
            )
        return stack

    @property
    def guards(self) -> list[Guard]:
        return [self.authorise]

    @property
    def openapi_components(self) -> Components:
        schemes = {
            API_KEY_SCHEME: SecurityScheme(
                type="apiKey",
                name=API_KEY_HEADER,
                security_scheme_in="header",
                description="An API key (`flk_...`), created by an admin with "
                "`POST /api/v1/api-keys`, or the `FLOWLEDGER_ADMIN_API_KEY`.",
            ),
            OAUTH2_SCHEME: SecurityScheme(
                type="oauth2",
                flows=OAuthFlows(
                    password=OAuthFlow(token_url=TOKEN_URL, refresh_url=TOKEN_URL, scopes={})
                ),
                description="A user's email and password, exchanged at "
                f"`{TOKEN_URL}` (OAuth2 password grant) for a short-lived access token sent as "
                "`Authorization: Bearer <token>`, and a refresh token.",
            ),
        }
        if self.settings.jwt_enabled:
            schemes[BEARER_SCHEME] = SecurityScheme(
                type="http",
                scheme="bearer",
                bearer_format="JWT",
                description=f"A JWT signed with {' or '.join(self.settings.jwt_algorithms)}, "
                f"with `sub`, `exp` and a `{self.settings.jwt_role_claim}` claim naming a role.",
            )
        return Components(security_schemes=schemes)  # type: ignore[arg-type]

    @property
    def security_requirements(self) -> list[SecurityRequirement]:
        schemes = self.openapi_components.security_schemes or {}
        return [{name: []} for name in schemes]

    def secure(self, app: Litestar) -> None:
        """Check every API route declares a permission; document security on the protected
        ones. Raises ``ImproperlyConfiguredException`` (the app does not start) otherwise."""
        undeclared = []
        errors = {
            401: ResponseSpec(ErrorBody, description="No credentials, or refused ones."),
            403: ResponseSpec(ErrorBody, description="The role does not allow this."),
        }
        if self.settings.rate_limit is not None:
            errors[429] = ResponseSpec(
                ErrorBody, description="Too many requests from this credential; see Retry-After."
            )
        for route in app.routes:
            for handler in _handlers_of(route):
                methods = set(getattr(handler, "http_methods", ()) or ())
                if methods == {"OPTIONS"}:
                    continue  # Litestar's own CORS preflight answers
                declared = handler.opt.get(PERMISSION_OPT)
                public = handler.opt.get(PUBLIC_OPT) is True
                if route.path.startswith(API_PREFIX) and not (
                    isinstance(declared, Permission) or public
                ):
                    undeclared.append(f"{'/'.join(sorted(methods)) or 'ASGI'} {route.path}")
                if public or self.is_public(route.path):
                    continue
                if isinstance(handler, HTTPRouteHandler):
                    handler.security = self.security_requirements
                    handler.responses = {**errors, **(handler.responses or {})}
        if undeclared:
            raise ImproperlyConfiguredException(
                "these API routes declare no permission (add opt=requires(Permission.X)): "
                + ", ".join(undeclared)
            )

    # -- the guard ---------------------------------------------------------------------------

    async def authorise(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        permission = handler.opt.get(PERMISSION_OPT)
        path = connection.scope["path"]
        if permission is None:
            if (
                connection.scope.get("method") == "OPTIONS"
                or not path.startswith(API_PREFIX)
                or handler.opt.get(PUBLIC_OPT) is True
            ):
                return
            raise PermissionDeniedException(detail="This route declares no permission.")
        principal = principal_of(connection)
        if principal is None:
            raise NotAuthorizedException(detail="Authentication required.")
        resource = None
        if RESOURCE_OPT in handler.opt:
            kind, param = handler.opt[RESOURCE_OPT]
            resource = ResourceRef(kind, str(connection.path_params.get(param, "")))
        decision = await self.policy.decide(
            principal, Permission(permission), resource, _runtime(connection)
        )
        if decision.allowed and not aaa_debug_enabled():
            return
        log = aaa_logger("AUTHZ").bind(
            actor=principal.actor,
            role=principal.role.value,
            permission=str(permission),
            method=connection.scope.get("method"),
            path=path,
            correlation_id=correlation_id_of(connection),
        )
        if not decision.allowed:
            log.warning("permission denied", result="DENIED", reason=decision.reason)
            raise PermissionDeniedException(detail=decision.reason)
        log.debug("permission granted", result="ALLOWED", reason=decision.reason)
