"""Start the sample agents (``examples/agents``) in subprocesses for tests.

Every agent runs as a real server in its own process (``python -m examples.agents ...``) on a
free port; these helpers wait until its agent card answers and stop it afterwards::

    from tests.support.agents import running_agent, get_stats

    with running_agent("flaky", "--fail-first", "2") as url:
        ...  # call http://127.0.0.1:<port>/ over A2A
        assert get_stats(url)["calls"] == 3

    with running_agents({"echo": [], "slow": ["slow", "--delay", "1"]}) as urls:
        urls["echo"], urls["slow"]  # one process each, started in parallel

    with running_all("--fail-first", "1") as urls:  # one process, four consecutive ports
        urls["transform"]

The stats helpers exist in a sync and an async flavour (``get_stats`` / ``aget_stats``,
``reset_stats`` / ``areset_stats``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from examples.agents import AGENT_KINDS
from tests.support import REPO_ROOT
from tests.support.polling import NotReached, eventually
from tests.support.ports import HOST, free_port, free_port_block

CARD_PATH = "/.well-known/agent-card.json"
DEFAULT_STARTUP_TIMEOUT_S = 20.0
PORT_TAKEN = "address already in use"
PORT_ATTEMPTS = 3


@dataclass
class AgentProcess:
    """A running ``python -m examples.agents`` subprocess.

    A port chosen for it was free a moment before the agent bound it; another socket can take
    it in between. ``restart`` (set when the port was chosen here) starts the agent again on
    newly chosen ports, and :meth:`wait_ready` uses it when the agent exits for that reason.
    """

    args: list[str]
    urls: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)
    restart: Callable[[], AgentProcess] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The base URL (of the only agent, or of the first one for ``all``)."""
        return next(iter(self.urls.values()))

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def wait_ready(self, timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S) -> None:
        """Block until every agent card answers; raise (with the log) if it does not.

        An agent whose chosen port was taken before it bound it is started again on new ports
        (``args``, ``urls`` and ``process`` then describe the new one).
        """
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._wait_ready(timeout_s)
                return
            except _PortTaken:
                if self.restart is None or attempt == PORT_ATTEMPTS:
                    raise
                self.stop()
                again = self.restart()
                self.args, self.urls, self.process = again.args, again.urls, again.process
                self.log_path, self._log = again.log_path, again._log

    def _wait_ready(self, timeout_s: float) -> None:
        pending = dict(self.urls)
        with httpx.Client(timeout=1.0) as client:

            def still_silent() -> list[str]:
                if self.process.poll() is not None:
                    log = self.log_tail()
                    failure = _PortTaken if PORT_TAKEN in log else RuntimeError
                    raise failure(
                        f"agent process {self.args} exited with {self.process.returncode}:\n" + log
                    )
                for kind, url in list(pending.items()):
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(url.rstrip("/") + CARD_PATH).status_code == 200:
                            del pending[kind]
                return sorted(pending)

            try:
                eventually(
                    still_silent,
                    lambda silent: not silent,
                    what=f"the agent cards of {sorted(self.urls)} to answer",
                    timeout_s=timeout_s,
                )
            except NotReached as late:
                log = self.log_tail()
                self.stop()
                raise TimeoutError(f"{late}:\n{log}") from late

    def stop(self, timeout_s: float = 5.0, *, keep_log: bool = False) -> None:
        """Terminate the process (SIGTERM, then SIGKILL); close and delete its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        self._log.close()
        if not keep_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()


class _PortTaken(RuntimeError):
    """The agent exited because a port chosen for it was taken before it bound it."""


def spawn(
    agent: str,
    *extra_args: str,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> AgentProcess:
    """Start ``python -m examples.agents <agent> ...`` without waiting for it.

    ``agent`` is one of :data:`AGENT_KINDS` or ``"all"``. The output goes to a temporary log
    file (shown in errors). Call :meth:`AgentProcess.wait_ready`, then
    :meth:`AgentProcess.stop`.
    """
    if agent not in (*AGENT_KINDS, "all"):
        raise ValueError(f"unknown agent {agent!r}; expected one of {AGENT_KINDS} or 'all'")
    if agent == "all":
        first = port or free_port_block(len(AGENT_KINDS))
        args = [agent, "--host", HOST, "--base-port", str(first)]
        urls = {kind: f"http://{HOST}:{first + i}/" for i, kind in enumerate(AGENT_KINDS)}
    else:
        chosen = port or free_port()
        args = [agent, "--host", HOST, "--port", str(chosen)]
        urls = {agent: f"http://{HOST}:{chosen}/"}
    args += list(extra_args)
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [child_env.get("PYTHONPATH")])]
    )
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    if env:
        child_env.update(env)
    log_fd, log_name = tempfile.mkstemp(prefix=f"agent-{agent}-", suffix=".log")
    log = os.fdopen(log_fd, "wb")
    process = subprocess.Popen(  # the command is fixed: this interpreter and our module
        [sys.executable, "-m", "examples.agents", *args],
        cwd=REPO_ROOT,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    restart = None if port else (lambda: spawn(agent, *extra_args, env=env))
    return AgentProcess(
        args=args,
        urls=urls,
        process=process,
        log_path=Path(log_name),
        _log=log,
        restart=restart,
    )


@contextlib.contextmanager
def _running(processes: Sequence[AgentProcess], timeout_s: float) -> Iterator[None]:
    try:
        for process in processes:
            process.wait_ready(timeout_s)
        yield
    finally:
        for process in processes:  # signal them all first: they shut down in parallel
            if process.process.poll() is None:
                process.process.terminate()
        for process in processes:
            process.stop()


@contextlib.contextmanager
def running_agent(
    agent: str,
    *extra_args: str,
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> Iterator[str]:
    """Run one agent in a subprocess on a free port; yield its base URL."""
    process = spawn(agent, *extra_args, env=env)
    with _running([process], startup_timeout_s):
        yield process.url


@contextlib.contextmanager
def running_agents(
    agents: Mapping[str, Sequence[str]] | Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> Iterator[dict[str, str]]:
    """Run several agents, one subprocess each, started in parallel; yield label -> URL.

    ``agents`` maps a label to the agent's command line (what follows
    ``python -m examples.agents``, without host and port): ``{"echo": ["echo"],
    "secure": ["echo", "--require-bearer", "t0k3n"]}``. An empty command line means the label
    is the agent kind. A plain list of kinds starts each with default options.
    """
    specs: dict[str, list[str]] = (
        {label: list(argv) or [label] for label, argv in agents.items()}
        if isinstance(agents, Mapping)
        else {kind: [kind] for kind in agents}
    )
    processes: list[AgentProcess] = []
    try:
        for argv in specs.values():
            processes.append(spawn(argv[0], *argv[1:], env=env))
    except BaseException:
        for process in processes:
            process.stop()
        raise
    with _running(processes, startup_timeout_s):
        yield {label: process.url for label, process in zip(specs, processes, strict=True)}


@contextlib.contextmanager
def running_all(
    *extra_args: str,
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> Iterator[dict[str, str]]:
    """Run all four agents in ONE subprocess on consecutive free ports; yield kind -> URL."""
    process = spawn("all", *extra_args, env=env)
    with _running([process], startup_timeout_s):
        yield dict(process.urls)


def _stats_url(base_url: str, reset: bool = False) -> str:
    return base_url.rstrip("/") + ("/stats/reset" if reset else "/stats")


def get_stats(base_url: str) -> dict[str, Any]:
    """``GET /stats`` of an agent: ``{"agent": ..., "calls": n, ...}``."""
    response = httpx.get(_stats_url(base_url), timeout=5.0)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def reset_stats(base_url: str, **settings: Any) -> dict[str, Any]:
    """``POST /stats/reset``; ``settings`` reconfigure the agent (``fail_first=2``...)."""
    response = httpx.post(_stats_url(base_url, reset=True), json=settings, timeout=5.0)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def aget_stats(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(_stats_url(base_url))
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


async def areset_stats(base_url: str, **settings: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.post(_stats_url(base_url, reset=True), json=settings)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result
