"""What goes wrong in an agent call, and how a2a-sdk's, httpx's and JSON-RPC's errors map to it.

Every failure is an :class:`AgentCallError` with a ``kind`` and ``retryable``; the table of which
failure gets which is in the package docstring (:mod:`flowledger.a2a`).
"""

from __future__ import annotations

import re
from typing import Final, Literal

import httpx
from a2a.client import A2AClientError, A2AClientTimeoutError, AgentCardResolutionError
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP, A2AError, InternalError

__all__ = ["AgentCallCancelled", "AgentCallError", "ErrorKind", "call_error", "card_error"]

ErrorKind = Literal[
    "timeout",
    "network",
    "http",
    "rpc",
    "task_failed",
    "task_rejected",
    "task_canceled",
    "input_required",
    "protocol",
    "card",
    "input",
]

_RETRYABLE_HTTP: Final = frozenset({408, 425, 429})
_RPC_CODE_IN_MESSAGE = re.compile(r"JSON-RPC Error (-?\d+)")


class AgentCallError(Exception):
    """An agent call that did not produce a reply; ``retryable`` says if trying again may help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        kind: ErrorKind,
        status_code: int | None = None,
        rpc_code: int | None = None,
        task_id: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.kind: ErrorKind = kind
        self.status_code = status_code
        self.rpc_code = rpc_code
        self.task_id = task_id
        self.state = state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, kind={self.kind!r}, "
            f"retryable={self.retryable!r}, task_id={self.task_id!r})"
        )


class AgentCallCancelled(AgentCallError):
    """The agent's task ended ``canceled`` (usually because flowledger cancelled it)."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(
            message, retryable=False, kind="task_canceled", task_id=task_id, state="canceled"
        )


def call_error(exc: BaseException, url: str, action: str) -> AgentCallError:
    """Map whatever a2a-sdk (or httpx below it) raised to an :class:`AgentCallError`."""
    if isinstance(exc, AgentCallError):
        return exc
    if isinstance(exc, A2AClientTimeoutError):
        return AgentCallError(f"could not {action}: timed out", retryable=True, kind="timeout")
    if isinstance(exc, httpx.HTTPError):
        mapped = _transport_error(exc, action)
        if mapped is not None:
            return mapped
    if isinstance(exc, A2AClientError):
        mapped = _transport_error(exc.__cause__, action)
        if mapped is not None:
            return mapped
        match = _RPC_CODE_IN_MESSAGE.search(exc.message)
        return AgentCallError(
            f"could not {action}: {exc.message}",
            retryable=False,
            kind="rpc" if match else "protocol",
            rpc_code=int(match.group(1)) if match else None,
        )
    if isinstance(exc, A2AError):  # a JSON-RPC error the agent answered with
        code = JSON_RPC_ERROR_CODE_MAP.get(type(exc))
        return AgentCallError(
            f"agent at {url} answered JSON-RPC error {code}: {exc.message}",
            retryable=isinstance(exc, InternalError),
            kind="rpc",
            rpc_code=code,
        )
    return AgentCallError(
        f"could not {action}: unexpected reply ({type(exc).__name__}: {exc})",
        retryable=False,
        kind="protocol",
    )


def card_error(exc: AgentCardResolutionError, url: str) -> AgentCallError:
    """Map a failure to fetch or read the agent card at ``url``."""
    mapped = _transport_error(exc.__cause__, f"fetch the agent card from {url}")
    if mapped is not None:
        if mapped.kind == "http" and mapped.status_code == 404:
            mapped.kind = "card"
            mapped.message = f"no agent card at {url} (HTTP 404)"
            mapped.args = (mapped.message,)
        return mapped
    return AgentCallError(
        f"agent card at {url} is not valid: {exc.message}", retryable=False, kind="card"
    )


def _transport_error(cause: BaseException | None, action: str) -> AgentCallError | None:
    """The error for an httpx failure underneath an a2a-sdk exception, if that is what it is."""
    if isinstance(cause, httpx.HTTPStatusError):
        return _http_error(cause, action)
    if isinstance(cause, httpx.TimeoutException):
        return AgentCallError(
            f"could not {action}: timed out ({type(cause).__name__})",
            retryable=True,
            kind="timeout",
        )
    if isinstance(cause, httpx.RequestError):
        what = str(cause) or type(cause).__name__
        if isinstance(cause, httpx.ConnectError):
            what = f"cannot connect ({what})"
        return AgentCallError(f"could not {action}: {what}", retryable=True, kind="network")
    return None


def _http_error(exc: httpx.HTTPStatusError, action: str) -> AgentCallError:
    status = exc.response.status_code
    reason = exc.response.reason_phrase or ""
    return AgentCallError(
        f"could not {action}: HTTP {status} {reason}".rstrip() + _body_snippet(exc.response),
        retryable=status in _RETRYABLE_HTTP or status >= 500,
        kind="http",
        status_code=status,
    )


def _body_snippet(response: httpx.Response) -> str:
    try:
        text = response.text.strip()
    except httpx.ResponseNotRead:
        return ""
    return f" - {text[:200]}" if text else ""
