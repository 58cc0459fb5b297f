"""See a run complete minutes after cloning: ``python -m examples.demo`` (with ``flowledger dev``
running in another terminal).

It starts the sample A2A agents (echo, transform, flaky, slow) as real servers, registers them
and the workflows in ``examples/workflows/`` through the API (again if they exist: it updates
them), runs ``demo-pipeline``, prints its steps and output, then runs one workflow of each kind
of step — a branch, a switch, a map, a loop, a wait, an approval (it answers the signal
itself) and a sub-workflow — and prints the curl commands to try the rest: watch, cancel,
fail and retry, pause and resume, signal, dry-run. The agents keep running until Ctrl-C
(``--once`` stops them after the runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
WORKFLOWS = HERE / "workflows"
AGENTS = ("echo", "transform", "flaky", "slow")
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def admin_key(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("FLOWLEDGER_ADMIN_API_KEY"):
        return os.environ["FLOWLEDGER_ADMIN_API_KEY"]
    data_dir = Path(os.environ.get("FLOWLEDGER_DATA_DIR") or ".flowledger")
    saved = data_dir / "admin-api-key"
    if saved.exists():
        return saved.read_text().strip()
    sys.exit(
        f"no API key: pass --key, set FLOWLEDGER_ADMIN_API_KEY, or run this where `flowledger dev`"
        f" keeps {saved}"
    )


def start_agents(base_port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.agents", "all", "--base-port", str(base_port)],
        cwd=HERE.parent,
    )
    deadline = time.monotonic() + 30
    for offset in range(len(AGENTS)):
        url = f"http://127.0.0.1:{base_port + offset}/.well-known/agent-card.json"
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                process.terminate()
                sys.exit(f"the sample agents did not start (is port {base_port + offset} free?)")
            time.sleep(0.2)
    return process


def check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        request = response.request
        sys.exit(f"{request.method} {request.url} -> {response.status_code}: {response.text}")
    return response.json() if response.content else None


def find(api: httpx.Client, path: str, name: str) -> dict[str, Any] | None:
    items = check(api.get(path, params={"name": name, "status": "all", "page_size": 100}))["items"]
    return next((item for item in items if item["name"] == name), None)


def register_agents(api: httpx.Client, base_port: int) -> None:
    for offset, name in enumerate(AGENTS):
        url = f"http://127.0.0.1:{base_port + offset}"
        body = {"url": url, "retry_config": {"max_retries": 2, "initial_delay_ms": 200}}
        existing = find(api, "/api/v1/agents", name)
        if existing is None or existing["status"] == "deleted":
            check(api.post("/api/v1/agents", json={"name": name, **body}))
        else:
            check(api.put(f"/api/v1/agents/{existing['id']}", json={**body, "status": "active"}))
        print(f"  agent {name:<10} {url}")


def register_workflows(api: httpx.Client) -> dict[str, str]:
    ids = {}
    for path in sorted(WORKFLOWS.glob("*.json")):
        definition = json.loads(path.read_text())
        name = definition["name"]
        existing = find(api, "/api/v1/workflows", name)
        if existing is None or existing["status"] == "deleted":
            created = check(api.post("/api/v1/workflows", json=definition))
        else:
            changes = {k: v for k, v in definition.items() if k != "name"}
            created = check(api.put(f"/api/v1/workflows/{existing['id']}", json=changes))
        ids[name] = created["id"]
        print(f"  workflow {name:<16} version {created['version']}  ({path.name})")
    return ids


def wait_for(
    api: httpx.Client,
    run_id: str,
    position: str,
    timeout_s: float = 60,
    until: frozenset[str] | set[str] = TERMINAL,
) -> dict[str, Any]:
    """Poll the run until it ends (or reaches a status of ``until``); the first reads wait for
    the write that created it."""
    deadline = time.monotonic() + timeout_s
    read_after = {"X-Flowledger-Min-Position": position}
    while True:
        run: dict[str, Any] = check(api.get(f"/api/v1/runs/{run_id}", headers=read_after))
        if run["status"] in until or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


KINDS: tuple[tuple[str, dict[str, Any], dict[str, Any] | None], ...] = (
    ("demo-branch", {"text": "event sourcing keeps every single change"}, None),
    ("demo-switch", {"region": "eu", "order": 42}, None),
    ("demo-map", {"words": ["keep", "every", "change"]}, None),
    ("demo-loop", {"times": 3}, None),
    ("demo-wait", {"wait_ms": 1500}, None),
    ("demo-approval", {"text": "publish the release notes"}, {"approved": True, "by": "the demo"}),
    ("demo-subworkflow", {"words": ["child", "runs"]}, None),
)
"""One workflow per kind of step, its input, and the signal the demo answers it with."""


def run_each_kind(api: httpx.Client, ids: dict[str, str]) -> bool:
    """Run one workflow of each kind of step; whether every run succeeded."""
    succeeded = True
    for name, input_data, answer in KINDS:
        response = api.post(
            f"/api/v1/workflows/{ids[name]}/execute", json={"input_data": input_data}
        )
        accepted = check(response)
        position = response.headers["X-Flowledger-Position"]
        if answer is not None:
            waiting = wait_for(api, accepted["run_id"], position, until={"WAITING", *TERMINAL})
            print(f"  {name:<17} {waiting['status']}: answering its signal 'approval'")
            signalled = api.post(
                f"/api/v1/runs/{accepted['run_id']}/signals/approval", json={"data": answer}
            )
            check(signalled)
            position = signalled.headers["X-Flowledger-Position"]
        run = wait_for(api, accepted["run_id"], position)
        steps = check(api.get(f"/api/v1/runs/{run['id']}/steps"))
        trail = ", ".join(f"{s['step_id']}:{s['status'].lower()}" for s in steps)
        print(f"  {name:<17} {run['status']:<9} {trail}")
        print(f"  {'':<17} output: {json.dumps(run['output_data'])}")
        succeeded = succeeded and run["status"] == "SUCCEEDED"
    return succeeded


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__)
    parser.add_argument("--api", default=os.environ.get("FLOWLEDGER_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", help="admin API key (default: .flowledger/admin-api-key)")
    parser.add_argument("--agents-base-port", type=int, default=9101)
    parser.add_argument("--no-agents", action="store_true", help="the agents already run")
    parser.add_argument("--once", action="store_true", help="stop the agents after the run")
    args = parser.parse_args()

    key = admin_key(args.key)
    api = httpx.Client(base_url=args.api, headers={"X-API-Key": key}, timeout=30)
    with contextlib.suppress(httpx.HTTPError):
        api.get("/health").raise_for_status()
    agents = None if args.no_agents else start_agents(args.agents_base_port)
    try:
        print("Registering the sample agents and workflows:")
        register_agents(api, args.agents_base_port)
        ids = register_workflows(api)
        print(f"\nWatch it live in the dashboard: {args.api}/ui/dashboard (sign in with the key)")
        print("Running demo-pipeline …")
        response = api.post(
            f"/api/v1/workflows/{ids['demo-pipeline']}/execute",
            json={"input_data": {"text": "event sourcing keeps every change"}},
        )
        accepted = check(response)
        run = wait_for(api, accepted["run_id"], response.headers["X-Flowledger-Position"])
        steps = check(api.get(f"/api/v1/runs/{run['id']}/steps"))
        for step in steps:
            print(f"  {step['step_id']:<8} {step['status']:<10} attempts {step['attempts']}")
        print(f"  run {run['id']} {run['status']} in {run['duration_ms']} ms")
        print(f"  output: {json.dumps(run['output_data'])}")
        print("\nOne workflow of each kind of step:")
        every_kind = run_each_kind(api, ids)
        print(HINTS.format(api=args.api, key=key, run=run["id"], **ids_by_key(ids)))
        if not args.once and agents is not None:
            print("The sample agents keep running; Ctrl-C stops them.")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    finally:
        if agents is not None:
            agents.terminate()
            agents.wait(timeout=10)
    return 0 if run["status"] == "SUCCEEDED" and every_kind else 1


def ids_by_key(ids: dict[str, str]) -> dict[str, str]:
    return {name.replace("-", "_"): value for name, value in ids.items()}


HINTS = """
This run in the dashboard: {api}/ui/runs/{run}
Try more there (sign in with the key below), or with curl (an admin key; the README has roles):
  export K={key}
  # watch a run step by step, and its log
  curl -s -H "X-API-Key: $K" {api}/api/v1/runs/{run}/steps
  curl -s -H "X-API-Key: $K" '{api}/api/v1/runs/{run}/logs?level=INFO'
  # start a slow run, then cancel it mid-step (its agent task is cancelled too)
  curl -s -H "X-API-Key: $K" -H 'content-type: application/json' \\
       -d '{{"input_data": {{"delay_s": 60}}}}' {api}/api/v1/workflows/{demo_slow}/execute
  curl -s -X POST -H "X-API-Key: $K" {api}/api/v1/runs/<run_id>/cancel
  # make the flaky agent fail 5 times, run demo-flaky (it fails), then retry it to success
  curl -s -X POST -d '{{"fail_first": 5}}' http://127.0.0.1:9103/stats/reset
  curl -s -H "X-API-Key: $K" -H 'content-type: application/json' \\
       -d '{{"input_data": {{"text": "retry me"}}}}' {api}/api/v1/workflows/{demo_flaky}/execute
  curl -s -X POST -d '{{"fail_first": 0}}' http://127.0.0.1:9103/stats/reset
  curl -s -H "X-API-Key: $K" {api}/api/v1/runs/<run_id>/retry-plan   # what a retry would redo
  curl -s -X POST -H "X-API-Key: $K" {api}/api/v1/runs/<run_id>/retry
  # ask a person: start demo-approval, see it WAITING, then answer its signal
  curl -s -H "X-API-Key: $K" -H 'content-type: application/json' \\
       -d '{{"input_data": {{"text": "ship it"}}}}' {api}/api/v1/workflows/{demo_approval}/execute
  curl -s -H "X-API-Key: $K" -H 'content-type: application/json' \\
       -d '{{"data": {{"approved": true, "by": "me"}}}}' {api}/api/v1/runs/<run_id>/signals/approval
  # pause a run (no step starts; calls in flight finish), then resume it
  curl -s -X POST -H "X-API-Key: $K" {api}/api/v1/runs/<run_id>/pause
  curl -s -X POST -H "X-API-Key: $K" {api}/api/v1/runs/<run_id>/resume
  # or retry every failed run of demo-flaky at once: first the preview, then for real
  flowledger runs retry --status FAILED --workflow demo-flaky --dry-run
  flowledger runs retry --status FAILED --workflow demo-flaky
  # dry-run the pipeline with a mocked step: nothing recorded, no agent called; the
  # transform agent's card declares its schemas, so contract_problems checks what it gets
  curl -s -H "X-API-Key: $K" -H 'content-type: application/json' \\
       -d '{{"input_data": {{"text": "hi"}}, "mock_outputs": {{"deliver": {{"to": "nobody"}}}}}}' \\
       {api}/api/v1/workflows/{demo_pipeline}/test
  # follow every event live
  flowledger events tail
"""


if __name__ == "__main__":
    raise SystemExit(main())
