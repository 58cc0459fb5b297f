"""What a person does in the dashboard, in a real Chromium: sign in, start a run from the form
and watch its steps turn green live, cancel a slow run, retry a failed one, edit a workflow into
a cycle and see the error at its field. Each flow leaves a screenshot."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Dashboard, choose_api_key, screenshot, sign_in
from tests.support.agents import reset_stats
from tests.support.polling import eventually

pytestmark = pytest.mark.browser
LIVE_S = 30_000


def node(page: Any, step: str) -> Any:
    """A step of the graph (React Flow node), which carries its status."""
    return page.locator(f'.react-flow__node [data-step="{step}"]')


def run_status(page: Any) -> Any:
    """The run's status badge, in the page's heading."""
    return page.locator("h1 [data-status]")


def stays_on_this_page(page: Any) -> None:
    """Mark the document: a reload or a navigation would lose the mark."""
    page.evaluate("window.__flowledgerStayed = true")


def stayed(page: Any) -> bool:
    return bool(page.evaluate("window.__flowledgerStayed === true"))


def test_only_the_sign_in_page_is_shown_until_a_key_is_accepted(
    browser_page: Any, dashboard: Dashboard
) -> None:
    page = browser_page
    page.goto(dashboard.page_url("/runs?status=FAILED"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "/ui/sign-in" in page.url
    expect(page.get_by_role("navigation")).to_have_count(0)

    choose_api_key(page)
    page.get_by_label("API key").fill("flk_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("The server refused this key")).to_be_visible()
    screenshot(page, "sign-in-refused")

    page.get_by_label("API key").fill(dashboard.api.headers["X-API-Key"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/runs?status=FAILED")  # back where the person was going
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.get_by_label("Status")).to_have_value("FAILED")

    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_user_signs_in_with_a_password_and_signing_out_ends_the_session(
    browser_page: Any, dashboard: Dashboard
) -> None:
    user = {
        "email": "grace@example.com",
        "name": "Grace",
        "role": "operator",
        "password": "a long browser password",
    }
    created = dashboard.api.post("/api/v1/users", json=user)
    assert created.status_code == 201, created.text
    page = browser_page
    page.goto(dashboard.page_url("/runs?status=SUCCEEDED"))
    expect(page.get_by_role("button", name="Password")).to_have_attribute("aria-pressed", "true")

    page.get_by_label("Email").fill(user["email"])
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("The email or the password is not right.")).to_be_visible()

    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/runs?status=SUCCEEDED")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.get_by_text(f"user:{created.json()['id']}")).to_be_visible()
    screenshot(page, "signed-in-with-password")
    kept = json.loads(page.evaluate("sessionStorage.getItem('flowledger.credential')"))
    assert kept["kind"] == "bearer"
    bearer = {"Authorization": f"Bearer {kept['token']}"}
    assert httpx.get(f"{dashboard.url}/api/v1/users/me", headers=bearer).status_code == 200

    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    refused = httpx.get(f"{dashboard.url}/api/v1/users/me", headers=bearer)
    assert refused.status_code == 401, "the session should be over on the server"
    refresh = {"grant_type": "refresh_token", "refresh_token": kept["refreshToken"]}
    again = httpx.post(f"{dashboard.url}/api/v1/auth/token", data=refresh)
    assert again.status_code == 400, again.text


def test_a_run_started_from_the_form_turns_green_step_by_step_without_reloading(
    browser_page: Any, dashboard: Dashboard
) -> None:
    page = browser_page
    sign_in(page, dashboard, f"/workflows/{dashboard.workflows['demo-slow']}/execute")
    page.get_by_label("delay_s").fill("1.5")  # a number field, built from input_schema
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/ui/runs/*")
    stays_on_this_page(page)

    expect(node(page, "wait")).to_have_attribute("data-status", "RUNNING", timeout=LIVE_S)
    expect(node(page, "after")).to_have_attribute("data-status", "PENDING")
    screenshot(page, "run-live-running")
    expect(node(page, "wait")).to_have_attribute("data-status", "SUCCEEDED", timeout=LIVE_S)
    expect(node(page, "after")).to_have_attribute("data-status", "SUCCEEDED", timeout=LIVE_S)
    expect(run_status(page)).to_have_attribute("data-status", "SUCCEEDED")
    assert stayed(page), "the page reloaded: it should follow the run's event stream"
    expect(page.get_by_text("Live", exact=True)).to_be_visible()
    screenshot(page, "run-succeeded")


def test_a_run_waiting_for_approval_is_paused_resumed_and_signalled_from_its_page(
    browser_page: Any, dashboard: Dashboard
) -> None:
    page = browser_page
    run_id = dashboard.execute("demo-approval", {"text": "ship it"})
    sign_in(page, dashboard, f"/runs/{run_id}")
    stays_on_this_page(page)
    approve = node(page, "approve")
    expect(approve).to_have_attribute("data-status", "WAITING", timeout=LIVE_S)
    expect(approve).to_have_attribute("data-kind", "signal")
    expect(approve).to_contain_text("signal “approval”")
    expect(node(page, "decide")).to_have_attribute("data-kind", "if")
    expect(run_status(page)).to_have_attribute("data-status", "WAITING")

    page.get_by_role("button", name="Pause run").click()
    expect(run_status(page)).to_have_attribute("data-status", "PAUSED", timeout=LIVE_S)
    screenshot(page, "run-paused")
    page.get_by_role("button", name="Resume run").click()
    expect(run_status(page)).to_have_attribute("data-status", "WAITING", timeout=LIVE_S)
    screenshot(page, "run-waiting-for-a-signal")

    form = page.get_by_role("form", name="Send signal approval")
    form.get_by_label("Data for the signal").fill('{"approved": true, "by": "a browser"}')
    form.get_by_role("button", name="Send approval").click()
    expect(run_status(page)).to_have_attribute("data-status", "SUCCEEDED", timeout=LIVE_S)
    expect(approve).to_have_attribute("data-status", "SUCCEEDED")
    expect(node(page, "publish")).to_have_attribute("data-status", "SUCCEEDED")
    expect(node(page, "discard")).to_have_attribute("data-status", "SKIPPED")
    assert stayed(page)
    steps = dashboard.api.get(f"/api/v1/runs/{run_id}/steps").json()
    approved = next(s for s in steps if s["step_id"] == "approve")
    assert approved["output_data"] == {"approved": True, "by": "a browser"}


def test_a_slow_run_is_cancelled_from_its_page(browser_page: Any, dashboard: Dashboard) -> None:
    page = browser_page
    run_id = dashboard.execute("demo-slow", {"delay_s": 120})
    sign_in(page, dashboard, f"/runs/{run_id}")
    expect(node(page, "wait")).to_have_attribute("data-status", "RUNNING", timeout=LIVE_S)

    page.get_by_role("button", name="Cancel run").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Cancel this run?")
    dialog.get_by_role("button", name="Cancel the run").click()

    expect(run_status(page)).to_have_attribute("data-status", "CANCELLED", timeout=LIVE_S)
    expect(node(page, "wait")).to_have_attribute("data-status", "CANCELLED", timeout=LIVE_S)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_role("button", name="Retry run")).to_be_visible()
    screenshot(page, "run-cancelled")
    run = dashboard.api.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "CANCELLED"


def test_a_failed_run_is_retried_to_success(browser_page: Any, dashboard: Dashboard) -> None:
    page = browser_page
    flaky = dashboard.agents["flaky"]
    reset_stats(flaky, fail_first=100)
    run_id = dashboard.execute("demo-flaky", {"text": "hello"})
    sign_in(page, dashboard, f"/runs/{run_id}")
    stays_on_this_page(page)

    expect(run_status(page)).to_have_attribute("data-status", "FAILED", timeout=LIVE_S)
    expect(node(page, "deliver")).to_have_attribute("data-status", "FAILED")
    failure = page.get_by_role("alert").filter(has_text="deliver")
    expect(failure).to_contain_text("simulated failure")
    screenshot(page, "run-failed")

    reset_stats(flaky, fail_first=0)
    page.get_by_role("button", name="Retry run").click()
    expect(run_status(page)).to_have_attribute("data-status", "SUCCEEDED", timeout=LIVE_S)
    expect(node(page, "deliver")).to_have_attribute("data-status", "SUCCEEDED")
    expect(page.get_by_text("retried once")).to_be_visible()
    assert stayed(page)
    screenshot(page, "run-retried")


def test_editing_a_workflow_into_a_cycle_shows_the_error_at_its_field(
    browser_page: Any, dashboard: Dashboard
) -> None:
    created = dashboard.api.post(
        "/api/v1/workflows",
        json={
            "name": "browser-cycle",
            "start_step": "first",
            "steps": {
                "first": {"agent_name": "echo", "next_step": "second"},
                "second": {"agent_name": "echo"},
            },
        },
    )
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    page = browser_page
    sign_in(page, dashboard, f"/workflows/{workflow_id}/edit")
    expect(page.locator(".react-flow__edge")).to_have_count(1)

    cyclic = """{
  "start_step": "first",
  "steps": {
    "first": {"agent_name": "echo", "next_step": "second"},
    "second": {"agent_name": "echo", "next_step": "first"}
  }
}"""
    editor = page.get_by_role("textbox", name="Workflow definition (JSON)")
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(cyclic)
    expect(page.locator(".react-flow__edge")).to_have_count(2)  # redrawn as typed, not saved

    page.get_by_role("button", name="Save").click()
    problem = page.get_by_role("alert", name="Problems").locator('[data-field="steps"]')
    expect(problem).to_contain_text("steps form a cycle")
    marked = page.locator(".cm-lintRange-error")
    expect(marked.first).to_have_text('"steps"')  # the field's key, in the editor
    screenshot(page, "workflow-cycle-error")

    versions = dashboard.api.get(f"/api/v1/workflows/{workflow_id}").json()["version"]
    assert versions == 1, "nothing was saved"


def test_a_phone_gets_the_menu_and_no_sideways_scrolling(
    browser_page: Any, dashboard: Dashboard
) -> None:
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    run_id = dashboard.execute("demo-pipeline", {"text": "small screens"})
    sign_in(page, dashboard, f"/runs/{run_id}")
    expect(run_status(page)).to_have_attribute("data-status", "SUCCEEDED", timeout=LIVE_S)
    screenshot(page, "phone-run")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    too_wide = page.evaluate(
        """[...document.querySelectorAll('body *')]
             .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
             .filter((e) => !e.closest('.overflow-x-auto, .overflow-auto, .react-flow, .sr-only'))
             .map((e) => e.tagName + '.' + e.className).slice(0, 5)"""
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px: {too_wide}"

    page.get_by_role("button", name="Open the menu").click()
    page.get_by_role("dialog").get_by_role("link", name="Workflows").click()
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()


def test_the_keyboard_reaches_everything_from_the_top(
    browser_page: Any, dashboard: Dashboard
) -> None:
    page = browser_page
    sign_in(page, dashboard, "/workflows")
    page.reload()  # a fresh page: the keyboard starts at the top
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    # The list is loaded before tabbing: on a slow machine Tab would otherwise run past the
    # controls out of the page, and the body (whose text holds every name) would be focused.
    link = page.get_by_role("link", name="demo-pipeline", exact=True)
    expect(link).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    # The page's controls, then the workflows by name: the examples (one per kind of step)
    # and the other tests' put several before demo-pipeline.
    for _ in range(24):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "document.activeElement?.tagName === 'A' ? document.activeElement.textContent : ''"
        )
        if focused == "demo-pipeline":
            break
    else:
        pytest.fail("Tab never reached the workflow's link")
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="demo-pipeline")).to_be_visible()
    eventually(lambda: page.url, lambda url: "/ui/workflows/" in url, what="the workflow page")


def test_a_viewer_is_shown_no_cancel_nor_retry(browser_page: Any, dashboard: Dashboard) -> None:
    created = dashboard.api.post(
        "/api/v1/api-keys", json={"name": "browser-viewer", "role": "viewer"}
    )
    assert created.status_code == 201, created.text
    flaky = dashboard.agents["flaky"]
    reset_stats(flaky, fail_first=100)
    run_id = dashboard.execute("demo-flaky", {"text": "no retry for viewers"})
    page = browser_page
    page.goto(dashboard.page_url(f"/runs/{run_id}"))
    choose_api_key(page)
    page.get_by_label("API key").fill(created.json()["key"])
    page.get_by_role("button", name="Sign in").click()

    expect(run_status(page)).to_have_attribute("data-status", "FAILED", timeout=LIVE_S)
    expect(page.get_by_role("button", name="Retry run")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_role("link", name="API keys")).to_have_count(0)  # admin pages hidden
    reset_stats(flaky, fail_first=0)


def test_an_admin_creates_a_key_sees_its_secret_once_and_revokes_it(
    browser_page: Any, dashboard: Dashboard
) -> None:
    page = browser_page
    sign_in(page, dashboard, "/api-keys")
    page.get_by_role("button", name="New key").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill("browser-made")
    dialog.get_by_label("Role").select_option("operator")
    dialog.get_by_role("button", name="Create key").click()

    secret = page.locator("[data-secret]")
    expect(secret).to_contain_text("flk_")
    key = secret.inner_text()
    who = dashboard.api.get("/api/v1/whoami", headers={"X-API-Key": key})
    assert who.json()["role"] == "operator"
    screenshot(page, "api-key-created")
    page.get_by_role("button", name="Done").click()
    expect(page.locator("[data-secret]")).to_have_count(0)  # shown once

    row = page.locator('tr[data-key="browser-made"]')
    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Revoke").click()
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "revoked")
    refused = dashboard.api.get("/api/v1/whoami", headers={"X-API-Key": key})
    assert refused.status_code == 401


def test_analytics_show_the_runs_and_a_workflow_lists_its_schedule_with_next_fire_times(
    browser_page: Any, dashboard: Dashboard
) -> None:
    run_id = dashboard.execute("demo-pipeline", {"text": "counted"})
    eventually(
        lambda: dashboard.api.get(f"/api/v1/runs/{run_id}").json().get("status"),
        lambda status: status == "SUCCEEDED",
        what="the run to succeed",
    )
    created = dashboard.api.post(
        "/api/v1/workflows",
        json={
            "name": "browser-scheduled",
            "steps": {"only": {"agent_name": "echo"}},
            "triggers": [{"type": "schedule", "id": "nightly", "cron": "0 3 * * *"}],
        },
    )
    assert created.status_code == 201, created.text
    page = browser_page
    sign_in(page, dashboard, "/dashboard")
    page.get_by_role("navigation").first.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics")).to_be_visible()
    busiest = page.locator('tr[data-workflow="demo-pipeline"]')
    expect(busiest).to_be_visible()
    assert int(page.locator('[data-figure="Runs"] dd').inner_text()) >= 1
    expect(page.locator('tr[data-agent="echo"]')).to_be_visible()
    expect(page.locator("canvas")).to_be_visible()
    screenshot(page, "analytics")

    page.goto(dashboard.page_url(f"/workflows/{created.json()['id']}"))
    page.get_by_role("tab", name="Triggers").click()
    nightly = page.locator('li[data-trigger="nightly"]')
    expect(nightly).to_contain_text("cron 0 3 * * *")
    expect(nightly.locator("[data-next-fire]")).to_have_count(3)
    next_fire = nightly.locator("[data-next-fire]").first.get_attribute("data-next-fire")
    assert next_fire is not None and "T03:00:00" in next_fire, next_fire
    screenshot(page, "workflow-triggers")
