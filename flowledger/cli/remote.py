"""Commands that talk to a running flowledger API (``flowledger runs ...``): where it is, and
the credential they send, so that what they do is authorised and audited like any call.

Every command reads these settings at start (``cli/settings.py``), so this module stays light:
the HTTP client is in ``cli/client.py``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flowledger.runtime.environment import read_settings, setting, text
from flowledger.runtime.settings import Settings


@dataclass(frozen=True)
class RemoteSettings:
    url: str | None = setting("FLOWLEDGER_URL", None, text)
    """The API the commands call; unset: ``http://FLOWLEDGER_HOST:FLOWLEDGER_PORT``."""
    api_key: str | None = setting("FLOWLEDGER_API_KEY", None, text)
    """The key they send; unset: ``FLOWLEDGER_ADMIN_API_KEY``, else the key ``flowledger dev``
    saved in the data folder."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteSettings:
        return read_settings(cls, settings.extra)


def base_url(settings: Settings, given: str | None) -> str:
    remote = RemoteSettings.from_settings(settings)
    if given or remote.url:
        return str(given or remote.url).rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


def api_key(settings: Settings, given: str | None) -> str | None:
    remote = RemoteSettings.from_settings(settings)
    if given or remote.api_key or settings.admin_api_key:
        return given or remote.api_key or settings.admin_api_key
    from flowledger.security.bootstrap import ADMIN_KEY_FILE  # noqa: PLC0415

    saved = Path(settings.data_dir) / ADMIN_KEY_FILE
    return saved.read_text().strip() if saved.is_file() else None
