"""How flowledger authenticates to an agent: the header sent with every A2A request.

The auth kinds are the ``auth_type`` values an agent is registered with
(``flowledger.domain.agents`` validates them; this module turns them into HTTP headers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from flowledger.domain.agents import AUTH_TYPES, DEFAULT_APIKEY_HEADER
from flowledger.domain.agents import AuthType as AuthKind

__all__ = ["DEFAULT_APIKEY_HEADER", "NO_AUTH", "AgentAuth", "AuthKind"]


@dataclass(frozen=True)
class AgentAuth:
    """How to authenticate to an agent: the HTTP header sent with every A2A request.

    ``bearer`` sends ``Authorization: Bearer <token>``; ``apikey`` sends ``<header>: <token>``.
    The secret is kept out of ``repr``.
    """

    kind: AuthKind = "none"
    token: str | None = field(default=None, repr=False)
    header: str = DEFAULT_APIKEY_HEADER

    def __post_init__(self) -> None:
        if self.kind not in AUTH_TYPES:
            raise ValueError(f"unknown auth kind {self.kind!r}")
        if self.kind != "none" and not self.token:
            raise ValueError(f"{self.kind} auth needs a token")
        if self.kind == "apikey" and not self.header:
            raise ValueError("apikey auth needs a header name")

    @classmethod
    def none(cls) -> AgentAuth:
        return cls("none")

    @classmethod
    def bearer(cls, token: str) -> AgentAuth:
        return cls("bearer", token)

    @classmethod
    def apikey(cls, key: str, header: str = DEFAULT_APIKEY_HEADER) -> AgentAuth:
        return cls("apikey", key, header)

    @classmethod
    def from_config(cls, auth_type: str, auth_config: Mapping[str, Any] | None) -> AgentAuth:
        """From an agent's registered ``auth_type`` and ``auth_config`` (``token``/``key``,
        ``header``), as stored by ``flowledger.domain.agents``."""
        config = auth_config or {}
        if auth_type == "bearer":
            return cls.bearer(str(config.get("token") or ""))
        if auth_type == "apikey":
            return cls.apikey(
                str(config.get("key") or ""), str(config.get("header") or DEFAULT_APIKEY_HEADER)
            )
        if auth_type == "none":
            return cls.none()
        raise ValueError(f"unknown auth type {auth_type!r}")

    def headers(self) -> dict[str, str]:
        if self.kind == "bearer" and self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.kind == "apikey" and self.token:
            return {self.header: self.token}
        return {}


NO_AUTH: Final = AgentAuth()
