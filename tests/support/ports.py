"""Free TCP ports on the loopback interface, for the servers tests start."""

from __future__ import annotations

import socket
from typing import Final

HOST: Final = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (bind to port 0 and let the OS choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_block(count: int, host: str = HOST, attempts: int = 50) -> int:
    """The first of ``count`` consecutive ports that were all free a moment ago."""
    for _ in range(attempts):
        first = free_port(host)
        if first + count > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((host, port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError(f"found no {count} consecutive free ports")
