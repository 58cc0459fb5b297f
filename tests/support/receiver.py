"""A real local HTTP server that receives webhook deliveries, checks their signatures, and
can be told to fail the first requests, to hang (a dead receiver) or to set a cookie."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flowledger.eventlog.envelope import Envelope, decode
from flowledger.webhooks.signing import SIGNATURE_HEADER, verify
from tests.support.polling import eventually


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    answered: int

    @property
    def envelope(self) -> Envelope:
        return decode(self.body)


@dataclass
class Receiver:
    secret: str
    fail_first: int = 0
    hang: bool = False
    cookie: str | None = None
    """A ``Set-Cookie`` header for every answer."""
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def accepted(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.answered == 200]

    def wait_for(self, condition: Callable[[Receiver], bool], timeout_s: float = 30.0) -> None:
        eventually(
            lambda: self,
            condition,
            what="the receiver's deliveries",
            timeout_s=timeout_s,
            interval_s=0.02,
            describe=lambda receiver: f"{len(receiver.deliveries)} deliveries",
        )


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if receiver.hang:
                receiver.released.wait(60)
            with receiver.lock:
                failing = len(receiver.deliveries) < receiver.fail_first
                status = 500 if failing else 200
                receiver.deliveries.append(
                    Delivery(
                        headers=dict(self.headers.items()),
                        body=body,
                        signature_valid=verify(
                            receiver.secret, body, self.headers.get(SIGNATURE_HEADER, "")
                        ),
                        answered=status,
                    )
                )
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            if receiver.cookie is not None:
                self.send_header("Set-Cookie", receiver.cookie)
            self.end_headers()
            self.wfile.write(b"try again later" if failing else b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextmanager
def running_receiver(secret: str, **options: object) -> Iterator[Receiver]:
    receiver = Receiver(secret=secret, **options)  # type: ignore[arg-type]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.released.set()
        server.shutdown()
        server.server_close()
