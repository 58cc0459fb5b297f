"""Every capability's settings, checked when any ``flowledger`` command starts, so that a bad
value stops the command at once with one line naming the variable (exit code 2) instead of
failing later inside a worker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from flowledger.executor.settings import ExecutorSettings
from flowledger.http.events.settings import StreamSettings
from flowledger.kafka.config import KafkaSettings
from flowledger.projections.settings import ProjectionSettings
from flowledger.runtime.settings import Settings
from flowledger.security.settings import SecuritySettings
from flowledger.webhooks.settings import WebhookSettings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def _kafka(settings: Settings) -> KafkaSettings:
    # Checked with or without KAFKA_BOOTSTRAP_SERVERS: `flowledger dev` may start a broker.
    return KafkaSettings.from_env(settings.extra, settings.kafka_bootstrap_servers or "")


CAPABILITY_SETTINGS: Final[Mapping[type[DataclassInstance], Callable[[Settings], object]]] = {
    ExecutorSettings: ExecutorSettings.from_settings,
    KafkaSettings: _kafka,
    ProjectionSettings: ProjectionSettings.from_settings,
    SecuritySettings: SecuritySettings.from_settings,
    StreamSettings: StreamSettings.from_settings,
    WebhookSettings: WebhookSettings.from_settings,
}
"""Each capability's typed settings class (the core :class:`Settings` aside), and how a
process reads it from the core settings."""


def check_settings(settings: Settings) -> None:
    """Read every capability's settings; raises SettingsError naming the first bad variable."""
    for read in CAPABILITY_SETTINGS.values():
        read(settings)
