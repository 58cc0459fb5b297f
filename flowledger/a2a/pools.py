"""The HTTP connections to agents (A2A agents and n8n webhooks): aiohttp's connection pool
under the httpx client a2a-sdk calls through.

a2a-sdk takes an ``httpx.AsyncClient``; what goes over the wire is its transport's job.
httpx's own (httpcore 1.0 on anyio and h11, in Python) was most of the executor's CPU: a 5-step
run's calls cost it more than its bookkeeping did. And its pool either closed almost every
connection that went idle (it keeps at most ``max_keepalive_connections`` *in all*, busy ones
included) or, kept large, checked every connection it held twice per request.
:class:`AiohttpTransport` hands each request to an ``aiohttp.ClientSession`` instead: its HTTP
parser is C, and its pool keeps, per agent (scheme, host and port), up to ``max_connections``
connections, every idle one for :data:`KEEPALIVE_S`; a request beyond them waits for one.
httpx stays above it: redirects, auth, headers, decoding, the client's timeouts (passed on per
request; aiohttp has no write timeout), and aiohttp's errors reach callers as httpx's
(:func:`mapped`: the kind :func:`~flowledger.a2a.errors.call_error` gives each failure is the
one it gave before). The request goes out as httpx built it: its headers as httpx wrote them,
none added, its URL as encoded.

A proxy keeps httpx's own transport, one pool of ``max_connections`` (aiohttp is not told of
proxies): for every URL when ``ALL_PROXY`` is set or a ``proxy`` is given, and otherwise for
the URLs that ``HTTP_PROXY`` or ``HTTPS_PROXY`` send through one (and the hosts in
``NO_PROXY``).

The client keeps no cookies (:class:`~flowledger.a2a.cookies.NoCookies` for httpx, a
``DummyCookieJar`` for aiohttp).
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import aiohttp
import httpx
import yarl

from flowledger.a2a.cookies import NoCookies

KEEPALIVE_S: Final = 2.0
"""How long an idle connection to an agent is kept: well within the keep-alive of the servers
agents run on (uvicorn's 5 s, nginx's 75 s). aiohttp, unlike httpcore, does not look at a
connection's socket before it sends a request over it, and a POST that finds the connection
closed by the server fails (no retry: it might have been received); one the server has not
yet closed for idling is not closed on us."""
MAX_HEADER_BYTES: Final = 65536
"""The longest header line an agent's answer may carry (h11's limit for all headers is 64 KiB;
aiohttp's own default, 8 KiB, would refuse answers httpx read)."""
NOT_ADDED: Final = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
"""Headers aiohttp adds when a request has none: the request goes out as httpx built it."""


@contextlib.contextmanager
def mapped(request: httpx.Request | None = None) -> Iterator[None]:
    """aiohttp's failures as the httpx errors httpx's own transport (httpcore) raised for the
    same failure, or one of the same kind (a timeout, a failure to connect, a connection lost
    or an answer that breaks HTTP)."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as error:  # connecting, or waiting for a connection
        raise httpx.ConnectTimeout(_text(error, "timed out connecting"), request=request) from error
    except TimeoutError as error:  # nothing read for too long (aiohttp's ServerTimeoutError)
        raise httpx.ReadTimeout(_text(error, "timed out reading"), request=request) from error
    except aiohttp.ClientConnectorError as error:  # refused, unknown host, TLS handshake
        raise httpx.ConnectError(_text(error, "cannot connect"), request=request) from error
    except aiohttp.ServerDisconnectedError as error:  # closed before answering
        raise httpx.RemoteProtocolError(
            _text(error, "server disconnected without sending a response"), request=request
        ) from error
    except aiohttp.ClientPayloadError as error:  # a body cut short (reset: a read error)
        reset = isinstance(error.__cause__, (ConnectionError, aiohttp.ClientOSError))
        kind = httpx.ReadError if reset else httpx.RemoteProtocolError
        raise kind(_text(error, "incomplete body"), request=request) from error
    except aiohttp.ClientResponseError as error:  # an answer that is not HTTP
        raise httpx.RemoteProtocolError(_text(error, "bad answer"), request=request) from error
    except aiohttp.ClientConnectionError as error:  # reset, or lost while sending
        raise httpx.ReadError(_text(error, "connection lost"), request=request) from error
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as error:
        raise httpx.UnsupportedProtocol(_text(error, "invalid URL"), request=request) from error
    except aiohttp.ClientError as error:
        raise httpx.TransportError(_text(error, "request failed"), request=request) from error


def _text(error: BaseException, fallback: str) -> str:
    return str(error) or f"{fallback} ({type(error).__name__})"


class _Body(httpx.AsyncByteStream):
    """A response's body, read as it arrives (a streamed answer's events at once). Closing it
    gives its connection back to the pool when the body was read to its end, and closes the
    connection otherwise (as httpx does)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with mapped(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one ``aiohttp.ClientSession``: at most ``max_connections``
    connections to each agent, idle ones kept for :data:`KEEPALIVE_S` (see the module's doc).
    The session is made on first use, on the event loop that uses it."""

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max(1, max_connections)
        self._ssl = httpx.create_ssl_context()  # what httpx's own transport verifies with
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        """The session of the running event loop."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # A session belongs to the loop it was made on; a client used on another loop (a
            # test's second asyncio.run) gets a new one.
            self._loop = loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0,  # no limit in all: the callers' own slots bound the calls
                    limit_per_host=self._max_connections,
                    keepalive_timeout=KEEPALIVE_S,
                    ssl=self._ssl,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # httpx decodes what the Content-Encoding says
                skip_auto_headers=NOT_ADDED,
                max_line_size=MAX_HEADER_BYTES,
                max_field_size=MAX_HEADER_BYTES,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self.session()
        body = await request.aread()
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() != b"transfer-encoding"  # the body was read whole: sent with its length
        ]
        if body and "content-length" not in request.headers:
            headers.append(("Content-Length", str(len(body))))
        with mapped(request):
            response = await session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,  # httpx follows them, if asked
                compress=None,
                timeout=self.timeout(request.extensions.get("timeout", {})),
            )
        try:
            version = response.version or aiohttp.HttpVersion11
            extensions: dict[str, Any] = {
                "http_version": f"HTTP/{version.major}.{version.minor}".encode()
            }
            if response.reason:  # as it came: aiohttp decoded it with surrogateescape
                extensions["reason_phrase"] = response.reason.encode("utf-8", "surrogateescape")
            return httpx.Response(
                response.status,
                headers=list(response.raw_headers),
                stream=_Body(response, request),
                request=request,
                extensions=extensions,
            )
        except BaseException:
            response.release()
            raise

    @staticmethod
    def timeout(timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
        """httpx's timeouts of a request (``Timeout.as_dict()``) as aiohttp's: waiting for a
        connection and connecting within ``pool`` + ``connect``, each read within ``read``
        (aiohttp has no write timeout)."""
        connect, pool = timeout.get("connect"), timeout.get("pool")
        return aiohttp.ClientTimeout(
            total=None,
            connect=None if connect is None and pool is None else (connect or 0) + (pool or 0),
            sock_connect=connect,
            sock_read=timeout.get("read"),
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def agent_http_client(max_connections: int, **options: Any) -> httpx.AsyncClient:
    """The httpx client agents are called with (:class:`~flowledger.a2a.AgentClient`, the
    n8n caller; ``options`` go to ``httpx.AsyncClient``): aiohttp's pool for every URL no proxy
    serves, and no cookies kept (whatever ``options`` say). A proxy keeps httpx's own
    transport, one pool of ``max_connections``, as before: for every URL when ``ALL_PROXY`` is
    set or a ``proxy`` is given, and otherwise for the URLs that ``HTTP_PROXY`` or
    ``HTTPS_PROXY`` send through one (and the hosts in ``NO_PROXY``)."""
    proxied = "proxy" in options or "all" in urllib.request.getproxies()
    direct = {} if proxied else {"all://": AiohttpTransport(max_connections=max_connections)}
    return httpx.AsyncClient(
        **{
            "timeout": httpx.Timeout(30.0),
            "headers": {"User-Agent": "flowledger-agent-client"},
            **options,
            "cookies": NoCookies(),
            "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
            "mounts": direct,
        }
    )
