"""Reading a Server-Sent Events stream message by message."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx


@dataclass
class Message:
    id: str | None = None
    data: str | None = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None


def messages(response: httpx.Response) -> Iterator[Message]:
    current = Message()
    for line in response.iter_lines():
        if line == "":
            yield current
            current = Message()
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                current.id = value
            elif name == "data":
                current.data = value if current.data is None else current.data + "\n" + value
            elif name == "retry":
                current.retry = int(value)
