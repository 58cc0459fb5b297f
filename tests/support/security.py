"""Credentials for tests: API keys issued through the API, signed JWTs, concrete URLs for
every route of the app."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from tests.support.http import ApiClient

API_KEYS = "/api/v1/api-keys"
JWT_SECRET = "test-jwt-secret-" + "0123456789abcdef" * 4
"""Long enough for HS512 too (64 bytes), so PyJWT does not warn."""
SAMPLE_PARAMS = {"uuid": "00000000-0000-4000-8000-000000000000", "int": "1", "str": "x"}


@dataclass(frozen=True)
class IssuedKey:
    id: str
    key: str
    body: dict[str, Any]

    @property
    def actor(self) -> str:
        return f"key:{self.id}"


def issue_key(api: ApiClient, role: str, **fields: Any) -> IssuedKey:
    """A new API key, issued by the client's current (admin) credential."""
    response = api.post(API_KEYS, json={"name": f"{role}-key", "role": role, **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    return IssuedKey(id=body["id"], key=body["key"], body=body)


def token(
    subject: str = "alice",
    role: Any = "operator",
    *,
    key: Any = JWT_SECRET,
    algorithm: str = "HS256",
    expires_in: int = 300,
    **claims: Any,
) -> str:
    payload = {"sub": subject, "exp": int(time.time()) + expires_in, **claims}
    if role is not None:
        payload["role"] = role
    return jwt.encode(payload, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@dataclass(frozen=True)
class RouteCall:
    method: str
    path: str
    """The route's path template (``/api/v1/agents/{agent_id:uuid}``)."""
    url: str
    """A concrete URL for it, path parameters filled with sample values."""
    handler: HTTPRouteHandler

    @property
    def permission(self) -> Any:
        return self.handler.opt.get("permission")


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::(\w+))?\}", lambda m: SAMPLE_PARAMS.get(m[2] or "str", "x"), path)


def route_calls(app: Litestar) -> Iterator[RouteCall]:
    """Every (method, route) the app answers, except Litestar's own OPTIONS answers."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method != "OPTIONS":
                    url = concrete(route.path)
                    if route.path.endswith("/events/stream"):
                        url += "?follow=false"  # a catch-up read ends; a live stream would not
                    yield RouteCall(method, route.path, url, handler)
