"""``python -m bench`` keeps working: a quick run of a benchmark writes its figures and table.

It asserts that the benchmark runs and reports, never how fast anything is (figures are for
``bench/``, not for tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowledger.runtime.database import Database
from tests.support import REPO_ROOT

pytestmark = pytest.mark.integration


def test_a_quick_benchmark_writes_its_figures_and_table(
    pg_server: Database, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "commands",
            "--quick",
            "--database-url",
            pg_server.with_dbname("postgres").libpq_url,
            "--out",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "partial.json").read_text())
    figures = {f["name"]: f for f in results["figures"]}
    throughput = figures["command throughput: POST /workflows/{id}/execute"]
    assert throughput["value"] > 0
    assert throughput["baseline"] > 0
    assert throughput["details"]["flat_out"]["errors"] == 0
    assert figures["event append through the command layer"]["value"] > 0
    assert figures["memory: peak RSS of the heaviest process"]["value"] > 0
    assert results["machine"]["cores"] >= 1
    assert results["machine"]["postgres"]
    table = (tmp_path / "partial.md").read_text()
    assert "| command throughput: POST /workflows/{id}/execute |" in table
