"""``/ui``: the dashboard's files (ADR 0022), and ``/`` redirecting there.

The files are the same for everyone and hold no data, so they are served without credentials
(``exclude_from_auth``), like ``/docs``: the app shows its sign-in page until it holds a
credential, and every piece of data it shows comes from ``/api/v1`` with that credential.
Paths under ``/ui`` that name no file get ``index.html`` (the app routes them in the browser),
except under ``/ui/assets/``, where a missing file is a plain 404 so that a stale page never runs
HTML as a script. Hashed assets are cached for a year; ``index.html`` is revalidated each time.
"""

from __future__ import annotations

from mimetypes import guess_type
from pathlib import Path, PurePosixPath
from typing import Annotated, Final

from litestar import MediaType, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter
from litestar.response import File, Redirect
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
"""Where ``npm --prefix ui run build`` writes the app (committed; ADR 0022)."""
UI_PATH: Final = "/ui"
PUBLIC: Final = {"exclude_from_auth": True}
"""Litestar's authentication middleware skips handlers whose ``opt`` carries this key."""

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # React Flow and CodeMirror set style attributes and inject style elements.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    )
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSET_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=31536000, immutable",
}
MEDIA_TYPES: Final = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".woff2": "font/woff2",
}
"""Stated rather than guessed from the platform's tables: with ``nosniff`` a browser runs a
script only when it is served as JavaScript."""
NOT_BUILT: Final = (
    "The dashboard is not built in this installation: run `npm --prefix ui ci && "
    "npm --prefix ui run build` from the repository (see ui/README.md)."
)


def static_file(path: str) -> Path | None:
    """The file ``path`` names inside the static folder, or None (never outside it)."""
    relative = PurePosixPath(path)
    parts = relative.parts
    if relative.is_absolute() or not parts or any(p == ".." or p.startswith(".") for p in parts):
        return None
    candidate = STATIC_DIR.joinpath(*parts).resolve()
    if not candidate.is_relative_to(STATIC_DIR) or not candidate.is_file():
        return None
    return candidate


def _index() -> Response[bytes]:
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        return Response(
            NOT_BUILT.encode(),
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            media_type=MediaType.TEXT,
        )
    return Response(index.read_bytes(), media_type=MediaType.HTML, headers=PAGE_HEADERS)


@get("/", include_in_schema=False, opt=PUBLIC, sync_to_thread=False)
def root() -> Redirect:
    return Redirect(f"{UI_PATH}/")


@get(UI_PATH, include_in_schema=False, opt=PUBLIC, sync_to_thread=False)
def dashboard_index() -> Response[bytes]:
    return _index()


@get(f"{UI_PATH}/{{path:path}}", include_in_schema=False, opt=PUBLIC, sync_to_thread=False)
def dashboard_file(path: Annotated[str, PathParameter()]) -> Response[bytes] | File:
    relative = path.lstrip("/")
    found = static_file(relative)
    if found is not None and found.name != "index.html":
        headers = ASSET_HEADERS if relative.startswith("assets/") else PAGE_HEADERS
        media_type = MEDIA_TYPES.get(found.suffix) or guess_type(found.name)[0]
        return File(
            found,
            content_disposition_type="inline",
            media_type=media_type or "application/octet-stream",
            headers=headers,
        )
    if relative.startswith("assets/"):
        raise NotFoundException(detail=f"No dashboard asset at {UI_PATH}/{relative}.")
    return _index()


dashboard_handlers = [root, dashboard_index, dashboard_file]
