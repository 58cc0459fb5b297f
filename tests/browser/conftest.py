"""The dashboard in a real browser: Debian's Chromium driven by Playwright for Python.

One API process per module (the real app with projections and the executor in-process, served
by uvicorn) on a fresh database, the sample agents as real A2A servers, the sample workflows of
``examples/workflows`` registered through the API; one fresh Chromium profile per test.

Without Chromium or Playwright these tests are skipped, unless ``FLOWLEDGER_REQUIRE_BROWSER`` is
set (``.ci/run`` sets it after installing both), where a missing browser fails them instead.
Screenshots go to ``tests/browser/screenshots/`` (or ``FLOWLEDGER_SCREENSHOTS``).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from flowledger.http.app import create_app
from flowledger.runtime.database import Database, create_database_if_missing, drop_database
from flowledger.runtime.process import Runtime
from tests.conftest import make_settings
from tests.support import REPO_ROOT
from tests.support.agents import running_all
from tests.support.http import ADMIN_API_KEY
from tests.support.server import serving

CHROMIUM: Final = os.environ.get("FLOWLEDGER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS: Final = Path(
    os.environ.get("FLOWLEDGER_SCREENSHOTS") or REPO_ROOT / "tests" / "browser" / "screenshots"
)
WORKFLOWS: Final = REPO_ROOT / "examples" / "workflows"


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        return "playwright is not installed"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = _browser_missing()
    if missing is None or os.environ.get("FLOWLEDGER_REQUIRE_BROWSER"):
        return  # present, or required: a missing browser then fails the tests
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.skip(reason=missing))


@dataclass(frozen=True)
class Dashboard:
    """The live server the browser talks to, and a plain HTTP client to set the scene."""

    url: str
    api: httpx.Client
    agents: dict[str, str]
    workflows: dict[str, str]

    def page_url(self, path: str) -> str:
        return f"{self.url}/ui{path}"

    def execute(self, workflow: str, input_data: dict[str, Any]) -> str:
        response = self.api.post(
            f"/api/v1/workflows/{self.workflows[workflow]}/execute", json={"input_data": input_data}
        )
        assert response.status_code == 202, response.text
        return str(response.json()["run_id"])


@pytest.fixture(scope="module")
def dashboard(pg_server: Database, template_database: str) -> Iterator[Dashboard]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    create_database_if_missing(pg_server, name, template=template_database)
    database = pg_server.with_dbname(name)
    settings = make_settings(database)
    runtime = Runtime.open(settings, database=database, migrate=False)
    app = create_app(settings, runtime=runtime, workers=("projections", "executor"))
    try:
        with running_all() as agent_urls, serving(app) as url:
            headers = {"X-API-Key": ADMIN_API_KEY}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
                yield Dashboard(url, api, agent_urls, _register(api, agent_urls))
    finally:
        runtime.close_sync()
        drop_database(pg_server, name)


def _register(api: httpx.Client, agent_urls: dict[str, str]) -> dict[str, str]:
    """The sample agents and workflows, as ``python -m examples.demo`` registers them."""
    for agent, agent_url in agent_urls.items():
        body = {"name": agent, "url": agent_url, "retry_config": {"max_retries": 1}}
        response = api.post("/api/v1/agents", json=body)
        assert response.status_code == 201, response.text
    ids = {}
    for path in sorted(WORKFLOWS.glob("*.json")):
        response = api.post("/api/v1/workflows", json=json.loads(path.read_text()))
        assert response.status_code == 201, response.text
        ids[response.json()["name"]] = response.json()["id"]
    return ids


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    """A page in a fresh Chromium profile, at a laptop's size."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1366, "height": 900},
        )
        context.set_default_timeout(30_000)
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page
        finally:
            context.close()
        assert not errors, f"the page raised: {errors}"


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def choose_api_key(page: Any) -> None:
    """The sign-in page asks for an email and a password unless told to take a key."""
    page.get_by_role("button", name="API key").click()


def sign_in(page: Any, dashboard: Dashboard, path: str = "/dashboard") -> None:
    """Open ``path``, meet the sign-in page, sign in with the admin key, land on ``path``."""
    page.goto(dashboard.page_url(path))
    choose_api_key(page)
    page.get_by_label("API key").fill(ADMIN_API_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/ui{path}")
