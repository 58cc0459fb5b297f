"""Every capability's settings, checked when any ``flowledger`` command starts, so that a bad
value stops the command at once with one line naming the variable (exit code 2) instead of
failing later inside a worker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from flowledger.bulk.settings import BulkSettings
from flowledger.cli.remote import RemoteSettings
from flowledger.eventlog.settings import EventStoreSettings
from flowledger.executor.settings import ExecutorSettings, LimitSettings
from flowledger.http.events.settings import StreamSettings
from flowledger.kafka.config import KafkaSettings
from flowledger.n8n.settings import N8nSettings
from flowledger.projections.settings import ProjectionSettings
from flowledger.runtime.connections import ConnectionSettings
from flowledger.runtime.settings import Settings
from flowledger.scheduling.settings import SchedulerSettings
from flowledger.security.settings import SecuritySettings
from flowledger.security.sign_in_settings import SignInSettings
from flowledger.webhooks.settings import WebhookSettings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def _kafka(settings: Settings) -> KafkaSettings:
    # Checked with or without KAFKA_BOOTSTRAP_SERVERS: `flowledger dev` may start a broker.
    return KafkaSettings.from_env(settings.extra, settings.kafka_bootstrap_servers or "")


CAPABILITY_SETTINGS: Final[Mapping[type[DataclassInstance], Callable[[Settings], object]]] = {
    BulkSettings: BulkSettings.from_settings,
    ConnectionSettings: ConnectionSettings.from_settings,
    EventStoreSettings: EventStoreSettings.from_settings,
    ExecutorSettings: ExecutorSettings.from_settings,
    KafkaSettings: _kafka,
    LimitSettings: LimitSettings.from_settings,
    N8nSettings: N8nSettings.from_settings,
    SchedulerSettings: SchedulerSettings.from_settings,
    RemoteSettings: RemoteSettings.from_settings,
    ProjectionSettings: ProjectionSettings.from_settings,
    SecuritySettings: SecuritySettings.from_settings,
    SignInSettings: SignInSettings.from_settings,
    StreamSettings: StreamSettings.from_settings,
    WebhookSettings: WebhookSettings.from_settings,
}
"""Each capability's typed settings class (the core :class:`Settings` aside), and how a
process reads it from the core settings."""


def check_settings(settings: Settings) -> None:
    """Read every capability's settings; raises SettingsError naming the first bad variable."""
    for read in CAPABILITY_SETTINGS.values():
        read(settings)
