"""n8n settings (``FLOWLEDGER_N8N_*``); the README's settings table lists them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flowledger.runtime.environment import read_settings, seconds, setting
from flowledger.runtime.settings import Settings


def host_list(raw: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    if not hosts:
        raise ValueError("must name at least one host, or be *")
    return hosts


@dataclass(frozen=True)
class N8nSettings:
    allowed_hosts: tuple[str, ...] = setting("FLOWLEDGER_N8N_ALLOWED_HOSTS", ("*",), host_list)
    """Hosts a sync may read (comma-separated; ``*``: any). The sync endpoint makes the server
    call the URL it is given: name your n8n hosts here so it cannot be pointed elsewhere."""
    timeout_s: float = setting("FLOWLEDGER_N8N_TIMEOUT", 10.0, seconds(above_zero=True))
    """Seconds each request of a sync to the n8n API may take."""

    @classmethod
    def from_settings(cls, settings: Settings) -> N8nSettings:
        return read_settings(cls, settings.extra)

    def allows(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        return "*" in self.allowed_hosts or host in self.allowed_hosts
