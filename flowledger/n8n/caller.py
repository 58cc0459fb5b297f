"""Calling an n8n workflow as a step: its input is POSTed (JSON) to the workflow's webhook and
the answer is the step's output.

The answer's JSON is the output as it is (an object, a list...); an empty answer is ``None``,
one that is not JSON ``{"text": ...}``. Failures are :class:`AgentCallError`: a deadline passed
(``timeout``) or no connection (``network``) and HTTP 408/425/429/5xx (``http``) may be retried;
other HTTP errors (404: the workflow is no longer active) may not. n8n runs have no task to
cancel: an abandoned call is simply dropped.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import httpx

from flowledger.a2a.auth import NO_AUTH, AgentAuth
from flowledger.a2a.errors import AgentCallError
from flowledger.a2a.pools import agent_http_client
from flowledger.a2a.reply import AgentReply

MESSAGE_ID_HEADER: Final = "X-Flowledger-Message-Id"
_RETRYABLE: Final = frozenset({408, 425, 429})
_EXCERPT: Final = 300


class N8nCaller:
    """POSTs step inputs to n8n webhooks; one instance (one connection pool) for every call."""

    def __init__(self, http_client: httpx.AsyncClient | None = None) -> None:
        self._own = http_client is None
        self.http = http_client or agent_http_client(100, follow_redirects=False)

    async def send(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        auth: AgentAuth = NO_AUTH,
        timeout_s: float,
        on_task: Callable[[str], Awaitable[None]] | None = None,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AgentReply:
        """POST ``payload`` to the workflow's webhook; ``headers`` (the caller's trace) go
        with it."""
        headers = {"content-type": "application/json", **(headers or {}), **auth.headers()}
        if message_id:
            headers[MESSAGE_ID_HEADER] = message_id
        try:
            response = await self.http.post(
                url, content=json.dumps(payload), headers=headers, timeout=timeout_s
            )
        except httpx.TimeoutException:
            raise AgentCallError(
                f"n8n webhook {url} did not answer within {timeout_s:g}s",
                retryable=True,
                kind="timeout",
            ) from None
        except httpx.HTTPError as error:
            raise AgentCallError(
                f"cannot reach n8n webhook {url}: {error}", retryable=True, kind="network"
            ) from None
        if response.is_error:
            status = response.status_code
            raise AgentCallError(
                f"n8n webhook {url} answered {status}: {response.text[:_EXCERPT]}",
                retryable=status >= 500 or status in _RETRYABLE,
                kind="http",
                status_code=status,
            )
        return AgentReply(output=_output(response), task_id=None, context_id=None, state=None)

    async def cancel(self, url: str, task_id: str, **_: Any) -> None:
        """n8n calls have no task to cancel."""

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()


def _output(response: httpx.Response) -> Any:
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        return {"text": response.text}
