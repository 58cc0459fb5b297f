"""An HTTP test client over the real app that reads its own writes.

Every write's ``X-Flowledger-Position`` is remembered and sent back as
``X-Flowledger-Min-Position`` on later requests, as a careful API client would do.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from flowledger.http.consistency import MIN_POSITION_HEADER, POSITION_HEADER


class ApiClient(TestClient[Litestar]):
    def __init__(self, app: Litestar, **kwargs: Any) -> None:
        super().__init__(app, raise_server_exceptions=False, **kwargs)
        self.position = 0

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        headers = dict(kwargs.pop("headers", None) or {})
        if self.position and MIN_POSITION_HEADER not in headers:
            headers[MIN_POSITION_HEADER] = str(self.position)
        response = super().request(method, url, headers=headers, **kwargs)
        written = response.headers.get(POSITION_HEADER)
        if written:
            self.position = max(self.position, int(written))
        return response
