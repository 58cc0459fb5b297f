"""The n8n public REST API (``/api/v1``, ``X-N8N-API-KEY``), as a sync needs it: the
instance's workflows, each read as an :class:`ExternalWorkflow` that says whether (and where)
it can be called.

A workflow is callable when it is active, not archived, and has an enabled Webhook node taking
POST: its production URL is ``<n8n url>/webhook/<path>``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx

from flowledger.domain.integrations import ExternalWorkflow, normal_url

API_KEY_HEADER: Final = "X-N8N-API-KEY"
WEBHOOK_NODE: Final = "n8n-nodes-base.webhook"
PAGE_SIZE: Final = 100
MAX_PAGES: Final = 100


class N8nApiError(Exception):
    """The instance could not be read (unreachable, refused the key, answered nonsense)."""


class N8nApi:
    def __init__(self, url: str, api_key: str, *, timeout_s: float = 10.0) -> None:
        self.url = normal_url(url)
        self.api_key = api_key
        self.timeout_s = timeout_s

    async def workflows(self, ids: Sequence[str] | None = None) -> list[ExternalWorkflow]:
        """Every workflow (or those of ``ids`` that exist), read as a sync sees them."""
        async with httpx.AsyncClient(
            base_url=f"{self.url}/api/v1",
            headers={API_KEY_HEADER: self.api_key, "accept": "application/json"},
            timeout=self.timeout_s,
        ) as http:
            if ids is None:
                raw = await self._all(http)
            else:
                raw = [w for w in [await self._one(http, i) for i in ids] if w is not None]
        return [read_workflow(self.url, item) for item in raw]

    async def _all(self, http: httpx.AsyncClient) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            page = await self._get(http, "/workflows", params)
            data = page.get("data") if isinstance(page, Mapping) else None
            if not isinstance(data, list):
                raise N8nApiError("n8n answered GET /api/v1/workflows without a data list")
            found += [item for item in data if isinstance(item, Mapping)]
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return found

    async def _one(self, http: httpx.AsyncClient, workflow_id: str) -> Mapping[str, Any] | None:
        try:
            item = await self._get(http, f"/workflows/{workflow_id}", {})
        except _Missing:
            return None
        return item if isinstance(item, Mapping) else None

    async def _get(self, http: httpx.AsyncClient, path: str, params: dict[str, Any]) -> Any:
        try:
            response = await http.get(path, params=params)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnicodeError) as error:
            raise N8nApiError(f"cannot reach n8n at {self.url}: {error}") from None
        if response.status_code in {401, 403}:
            raise N8nApiError(f"n8n at {self.url} refused the API key ({response.status_code})")
        if response.status_code == 404 and path != "/workflows":
            raise _Missing
        if response.is_error:
            raise N8nApiError(
                f"n8n at {self.url} answered {response.status_code} to GET /api/v1{path}"
            )
        try:
            return response.json()
        except ValueError:
            raise N8nApiError(f"n8n at {self.url} did not answer JSON") from None


class _Missing(Exception):
    pass


def read_workflow(base_url: str, item: Mapping[str, Any]) -> ExternalWorkflow:
    """How a sync sees one workflow of the n8n API."""
    workflow_id = str(item.get("id", ""))
    name = str(item.get("name") or workflow_id)
    active = bool(item.get("active")) and not item.get("isArchived")
    nodes = item.get("nodes")
    hooks = [
        n
        for n in (nodes if isinstance(nodes, list) else [])
        if isinstance(n, Mapping) and n.get("type") == WEBHOOK_NODE and not n.get("disabled")
    ]
    problem: str | None = None
    url: str | None = None
    post = [h for h in hooks if _method(h) == "POST"]
    if item.get("isArchived"):
        problem = "it is archived"
    elif not hooks:
        problem = "it is not started by a Webhook node"
    elif not post:
        problem = f"its Webhook node takes {_method(hooks[0])}, not POST"
    else:
        path = str((post[0].get("parameters") or {}).get("path") or post[0].get("webhookId") or "")
        url = f"{base_url}/webhook/{path.strip('/')}"
        if not active:
            problem = "it is not active (its webhook does not answer)"
    return ExternalWorkflow(
        id=workflow_id, name=name, active=active, webhook_url=url, problem=problem
    )


def _method(node: Mapping[str, Any]) -> str:
    return str((node.get("parameters") or {}).get("httpMethod") or "GET").upper()


async def instance_health(webhook_url: str, timeout_s: float) -> tuple[float | None, str | None]:
    """Whether the n8n instance serving ``webhook_url`` answers ``/healthz``: the latency in
    milliseconds, or why not."""
    base = webhook_url.split("/webhook/", 1)[0]
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            response = await http.get(f"{base}/healthz")
    except (httpx.HTTPError, ValueError) as error:
        return None, f"cannot reach n8n at {base}: {error}"
    if response.status_code != 200:
        return None, f"n8n at {base} answered {response.status_code} to /healthz"
    return (time.perf_counter() - started) * 1000, None
