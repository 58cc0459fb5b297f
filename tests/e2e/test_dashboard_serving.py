"""The dashboard's files at ``/ui`` (ADR 0022): public, the app's routes answered with its page,
assets with their type and a long cache, nothing outside its folder; and the committed build
and API document that the dashboard is made from are the current ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowledger.http.dashboard.routes import STATIC_DIR, static_file
from flowledger.http.openapi_document import openapi_text
from tests.support import REPO_ROOT
from tests.support.http import ApiClient

pytestmark = pytest.mark.e2e
ASSET = re.compile(r'(?:src|href)="(/ui/[^"]+)"')


def test_the_root_sends_people_to_the_dashboard(api: ApiClient) -> None:
    with api.as_key(None):
        response = api.get("/", follow_redirects=False)
    assert response.status_code in (301, 302, 307, 308)
    assert response.headers["location"].endswith("/ui/")


@pytest.mark.parametrize("path", ["/ui", "/ui/", "/ui/runs/3f1c", "/ui/workflows/new?x=1"])
def test_every_page_of_the_app_is_its_one_html_page_without_credentials(
    api: ApiClient, path: str
) -> None:
    with api.as_key(None):
        response = api.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<div id="root">' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-cache"


def test_the_page_loads_its_assets_with_their_types_and_a_long_cache(api: ApiClient) -> None:
    with api.as_key(None):
        page = api.get("/ui/").text
        assets = ASSET.findall(page)
        assert any(a.endswith(".js") for a in assets)
        assert any(a.endswith(".css") for a in assets)
        for asset in assets:
            response = api.get(asset)
            assert response.status_code == 200, asset
            if asset.endswith(".js"):
                assert response.headers["content-type"].startswith("text/javascript")
            if "/assets/" in asset:
                assert "immutable" in response.headers["cache-control"]


def test_data_still_needs_a_credential(api: ApiClient) -> None:
    with api.as_key(None):
        assert api.get("/api/v1/runs").status_code == 401
        assert api.get("/api/v1/whoami").status_code == 401


def test_a_missing_asset_is_a_404_not_the_page(api: ApiClient) -> None:
    with api.as_key(None):
        response = api.get("/ui/assets/missing.js")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("No dashboard asset")


@pytest.mark.parametrize(
    "path", ["../routes.py", "assets/../../routes.py", ".hidden", "/etc/passwd", "", "assets"]
)
def test_no_path_names_a_file_outside_the_folder(path: str) -> None:
    assert static_file(path) is None


def test_a_path_inside_the_folder_names_its_file() -> None:
    assert static_file("index.html") == STATIC_DIR / "index.html"


def test_the_committed_build_is_in_the_package() -> None:
    index = STATIC_DIR / "index.html"
    assert index.is_file(), "run `npm --prefix ui ci && npm --prefix ui run build`"
    for asset in ASSET.findall(index.read_text()):
        assert (STATIC_DIR / asset.removeprefix("/ui/")).is_file(), asset


def test_the_dashboards_copy_of_the_api_document_is_the_apps() -> None:
    committed = Path(REPO_ROOT / "ui" / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_text(), (
        "ui/openapi.json is not the app's document: run `npm --prefix ui run api` (it also "
        "regenerates ui/src/api/schema.d.ts), then `npm --prefix ui run check` and commit"
    )
