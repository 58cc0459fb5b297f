"""``flowledger runs cancel|retry`` against the real app served over HTTP (uvicorn in a thread,
projections in-process), as an operator's terminal would call it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from flowledger.cli.main import main
from flowledger.domain.runs import Run
from flowledger.eventlog.store import EventMetadata
from flowledger.http.app import create_app
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings, get_settings
from tests.support.http import ADMIN_API_KEY, ApiClient
from tests.support.polling import eventually
from tests.support.runs import run_in_state
from tests.support.server import serving

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(settings: Settings, runtime: Runtime) -> Iterator[str]:
    app = create_app(settings, runtime=runtime, workers=("projections",))
    with serving(app) as url:
        yield url


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, served: str) -> Iterator[None]:
    monkeypatch.setenv("FLOWLEDGER_URL", served)
    monkeypatch.setenv("FLOWLEDGER_API_KEY", ADMIN_API_KEY)
    monkeypatch.setenv("FLOWLEDGER_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_runs_retry_previews_then_retries_with_a_progress_bar(
    settings: Settings,
    runtime: Runtime,
    served: str,
    cli_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ApiClient(create_app(settings, runtime=runtime)) as api:
        api.post("/api/v1/agents", json={"name": "echo", "url": "http://127.0.0.1:9"})
        api.post("/api/v1/agents", json={"name": "transform", "url": "http://127.0.0.1:9"})
        workflow = api.post(
            "/api/v1/workflows",
            json={"name": "nightly", "steps": {"a": {"agent_name": "echo"}}},
        ).json()
    workflow_id = uuid.UUID(workflow["id"])
    failed = []
    for status in ["FAILED"] * 5 + ["SUCCEEDED"]:
        run = run_in_state(status, workflow_id=workflow_id)
        runtime.store.record(run, metadata=EventMetadata.system("seeder"))
        failed.append(run.id)
    filters = ["--workflow", "nightly", "--since", "1h"]
    eventually(
        lambda: (
            main(["runs", "retry", *filters, "--dry-run"]) == 0
            and "6 runs match" in capsys.readouterr().out
        ),
        what="the runs in the runs list",
    )
    head = runtime.store.head()

    assert main(["runs", "retry", *filters, "--status", "FAILED", "--dry-run"]) == 0
    preview = capsys.readouterr().out
    assert "5 runs match: 5 would be retried, 0 skipped. By status: FAILED 5" in preview
    assert "redo b; reuse a" in preview
    assert runtime.store.head() == head, "a dry run changes nothing"

    assert main(["runs", "retry", *filters, "--reason", "echo was down"]) == 0
    done = capsys.readouterr().out
    assert "6/6" in done, "the progress bar reached the end"
    assert "COMPLETED: 5 done, 1 skipped (SUCCEEDED 1), 0 failed, 0 not reached" in done
    assert [runtime.store.get(Run, r).retry_number for r in failed] == [1] * 5 + [0]

    assert main(["runs", "cancel", "--workflow", "no-such-flow"]) == 1
    assert "no workflow is named 'no-such-flow'" in capsys.readouterr().err
    assert main(["runs", "cancel", "--status", "RUNNING", "--since", "yesterday"]) == 1
    assert "--since takes ISO 8601" in capsys.readouterr().err
    assert main(["runs", "cancel", "--status", "RUNNING", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach the API at http://127.0.0.1:9" in capsys.readouterr().err
