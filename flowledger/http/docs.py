"""API documentation at the spec's paths: ``/docs`` (Swagger UI), ``/redoc``, ``/openapi.json``.

Litestar's own documentation router lives under ``/schema``; these handlers render the same
schema with the same plugins at the root, where a catch-all router would otherwise answer every
unknown path with an HTML page instead of our JSON 404.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
)

JSON = JsonRenderPlugin(path="/openapi.json")
SWAGGER = SwaggerRenderPlugin(path="/swagger")
REDOC = RedocRenderPlugin(path="/redoc")
RENDER_PLUGINS: list[OpenAPIRenderPlugin] = [JSON, SWAGGER, REDOC]


def _render(plugin: OpenAPIRenderPlugin, request: Request[Any, Any, Any]) -> Response[bytes]:
    schema = request.app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
    return Response(plugin.render(request, schema), media_type=plugin.media_type)


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _render(JSON, request)


@get("/docs", include_in_schema=False, sync_to_thread=False, media_type=MediaType.HTML)
def swagger_ui(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _render(SWAGGER, request)


@get("/redoc", include_in_schema=False, sync_to_thread=False, media_type=MediaType.HTML)
def redoc(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _render(REDOC, request)


docs_handlers = [openapi_json, swagger_ui, redoc]
