"""A small client of the flowledger API for the commands that call it (``flowledger runs``)."""

from __future__ import annotations

from typing import Any

import httpx

from flowledger.http.consistency import MIN_POSITION_HEADER, POSITION_HEADER


class RemoteError(Exception):
    """The API could not be reached, or refused the call (the message says why)."""


class Api:
    """A small client of the flowledger API: JSON in, JSON out, errors as RemoteError. It reads
    its own writes: each write's position goes back with the next requests."""

    def __init__(self, url: str, key: str | None, timeout_s: float = 30.0) -> None:
        headers = {"X-API-Key": key} if key else {}
        self.url = url
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)
        self.position = 0

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {MIN_POSITION_HEADER: str(self.position)} if self.position else {}
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as error:
            raise RemoteError(f"cannot reach the API at {self.url}: {error}") from None
        if response.is_success:
            written = response.headers.get(POSITION_HEADER)
            self.position = max(self.position, int(written)) if written else self.position
            return response.json()
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:200]}
        problems = [f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or []]
        detail = str(body.get("detail") or response.reason_phrase)
        raise RemoteError(f"{response.status_code}: {'; '.join(problems) or detail}")
