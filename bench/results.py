"""Figures, the machine they were measured on, and the files they are written to."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    """One measured figure, with the baseline it is compared to and the target it must meet."""

    name: str
    value: float
    unit: str
    how: str
    baseline: float | None = None
    baseline_unit: str | None = None
    target: str = ""
    met: bool | None = None
    """None when the figure has no target (or the target is judged in another figure)."""
    details: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile (0 to 100) by nearest rank; 0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, math.ceil(p * len(ordered) / 100) - 1))
    return ordered[rank]


def machine(database_url: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_bytes() / 2**30, 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if database_url:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgres"] = str(row[0]) if row else "?"
    return info


def _memory_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def commit() -> str:
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=here,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "flowledger", "migrations", "bench/*.py"],
            check=False,
            cwd=here,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    return f"{sha}-dirty" if dirty else sha or "?"


def write(
    figures: list[Figure], machine_info: dict[str, Any], elapsed_s: float, out: Path, name: str
) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit(),
        "machine": machine_info,
        "elapsed_s": round(elapsed_s, 1),
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
    }
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    md_path = out / f"{name}.md"
    md_path.write_text(markdown(document))
    return json_path, md_path


def _number(value: float | None, unit: str | None = None) -> str:
    if value is None:
        return "—"
    text = (
        f"{value:,.0f}"
        if abs(value) >= 100
        else f"{value:,.1f}"
        if abs(value) >= 10
        else (f"{value:,.2f}")
    )
    return f"{text} {unit}" if unit else text


def markdown(document: dict[str, Any]) -> str:
    m = document["machine"]
    lines = [
        f"Measured {document['measured_at']} at commit `{document['commit']}` on {m['cores']} "
        f"cores, {m['memory_gib']} GiB ({m['cpu']}), PostgreSQL {m.get('postgres', '?')}, "
        f"Python {m['python']}; the whole run took {document['elapsed_s']:.0f} s.",
        "",
        "| figure | measured | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in document["figures"]:
        ratio = (
            "—"
            if f["ratio"] is None
            else f"{f['ratio']:.1%}"
            if f["ratio"] < 0.1
            else (f"{f['ratio']:.0%}")
        )
        met = {True: "yes", False: "**no**", None: "—"}[f["met"]]
        lines.append(
            f"| {f['name']} | {_number(f['value'], f['unit'])} | "
            f"{_number(f['baseline'], f['baseline_unit'])} | {ratio} | {f['target'] or '—'} "
            f"| {met} |"
        )
    notes = [f for f in document["figures"] if f["notes"]]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- **{f['name']}**: {f['notes']}" for f in notes]
    return "\n".join(lines) + "\n"
