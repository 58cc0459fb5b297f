"""The demo (``python -m examples.demo``) against a served app: it registers the sample agents
and every workflow of ``examples/workflows/`` — one per kind of step — and runs each of them to
success through the API, answering the approval's signal itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowledger.http.app import create_app
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from tests.support.http import ADMIN_API_KEY
from tests.support.ports import free_port_block
from tests.support.server import serving

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_one_workflow_of_each_kind_of_step_to_success(
    settings: Settings, runtime: Runtime
) -> None:
    app = create_app(settings, runtime=runtime, workers=("projections", "executor"))
    with serving(app) as url:
        for _ in range(3):  # the agents' ports may be taken between choosing and binding them
            demo = run_demo(url)
            if "the sample agents did not start" not in demo.stdout + demo.stderr:
                break
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    for name in (
        "demo-branch",
        "demo-switch",
        "demo-map",
        "demo-loop",
        "demo-wait",
        "demo-approval",
        "demo-subworkflow",
    ):
        assert any(line.split()[:2] == [name, "SUCCEEDED"] for line in lines), demo.stdout
    assert any("demo-approval" in line and "WAITING" in line for line in lines), demo.stdout


def run_demo(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.demo",
            "--api",
            url,
            "--key",
            ADMIN_API_KEY,
            "--agents-base-port",
            str(free_port_block(4)),
            "--once",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
