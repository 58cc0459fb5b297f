"""A cookie jar that keeps nothing, for the HTTP clients flowledger calls out with (agents,
n8n webhooks, and the webhook sender's receivers).

One client calls every agent on behalf of every run, and one delivers to every webhook
receiver: a cookie kept from one answer would go with later requests made for others, and to
every other server on the same host (a cookie is not bound to a port). httpx has no switch for
it; a jar that keeps nothing is its maintainers' advice (encode/httpx#1359).
"""

from __future__ import annotations

from http.client import HTTPResponse
from http.cookiejar import Cookie, CookieJar
from urllib.request import Request

__all__ = ["NoCookies"]


class NoCookies(CookieJar):
    """Keeps no cookie: ``httpx.AsyncClient(cookies=NoCookies())`` sends none back."""

    def extract_cookies(self, response: HTTPResponse, request: Request) -> None:
        pass

    def set_cookie(self, cookie: Cookie) -> None:
        pass
