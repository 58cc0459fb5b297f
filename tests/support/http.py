"""An HTTP test client over the real app that reads its own writes, as an admin by default.

Every write's ``X-Flowledger-Position`` is remembered and sent back as
``X-Flowledger-Min-Position`` on later requests, as a careful API client would do.

Every request carries the test settings' admin key (``FLOWLEDGER_ADMIN_API_KEY``) in
``X-API-Key``, unless the request sends its own ``X-API-Key`` or ``Authorization`` header, or
the client is switched to another credential (or none) with :meth:`ApiClient.as_key`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from litestar import Litestar
from litestar.testing import TestClient

from flowledger.http.consistency import MIN_POSITION_HEADER, POSITION_HEADER

ADMIN_API_KEY: Final = "test-admin-key-0123456789abcdef"
"""The admin key of the test settings (``make_settings``)."""
CREDENTIAL_HEADERS: Final = frozenset({"x-api-key", "authorization"})


class ApiClient(TestClient[Litestar]):
    def __init__(self, app: Litestar, *, api_key: str | None = ADMIN_API_KEY, **kwargs: Any):
        super().__init__(app, raise_server_exceptions=False, **kwargs)
        self.position = 0
        self.api_key = api_key

    @contextmanager
    def as_key(self, api_key: str | None) -> Iterator[ApiClient]:
        """Send ``api_key`` (None: no credential at all) inside the block."""
        previous, self.api_key = self.api_key, api_key
        try:
            yield self
        finally:
            self.api_key = previous

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        headers = dict(kwargs.pop("headers", None) or {})
        if self.position and MIN_POSITION_HEADER not in headers:
            headers[MIN_POSITION_HEADER] = str(self.position)
        if self.api_key and not CREDENTIAL_HEADERS & {name.lower() for name in headers}:
            headers["X-API-Key"] = self.api_key
        response = super().request(method, url, headers=headers, **kwargs)
        written = response.headers.get(POSITION_HEADER)
        if written:
            self.position = max(self.position, int(written))
        return response
