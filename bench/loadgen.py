"""Starting the load generator in its own process and reading its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.system import ROOT


def generate_load(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run ``python -m bench.load`` with ``spec``; its figures (see bench/load.py)."""
    spec_path = workdir / "load-spec.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", str(spec_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=float(spec["duration_s"]) + float(spec.get("warmup_s", 0)) + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
