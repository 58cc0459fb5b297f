"""Kafka settings from the environment (``KAFKA_BOOTSTRAP_SERVERS`` and ``FLOWLEDGER_KAFKA_*``),
and the aiokafka client arguments they make. The README's settings table lists them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from flowledger.eventlog.envelope import DEFAULT_TOPIC_PREFIX
from flowledger.runtime.environment import (
    integer,
    one_of,
    read_settings,
    seconds,
    setting,
    switch,
    text,
)
from flowledger.runtime.settings import Settings, SettingsError

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSIONS: Final = ("none", "gzip", "snappy", "lz4", "zstd")
ACKS: Final = ("all", "1", "0")


def _topic_prefix(raw: str) -> str:
    if not all(c.isalnum() or c in "._-" for c in raw):
        raise ValueError("may only contain letters, digits, '.', '_' and '-'")
    return raw


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    """``KAFKA_BOOTSTRAP_SERVERS``, kept in the core settings (or the dev broker's address)."""
    topic_prefix: str = setting(
        "FLOWLEDGER_KAFKA_TOPIC_PREFIX", DEFAULT_TOPIC_PREFIX, _topic_prefix
    )
    partitions: int = setting("FLOWLEDGER_KAFKA_PARTITIONS", 3, integer(minimum=1))
    replication_factor: int = setting("FLOWLEDGER_KAFKA_REPLICATION_FACTOR", 1, integer(minimum=1))
    acks: str = setting("FLOWLEDGER_KAFKA_ACKS", "all", one_of(*ACKS))
    idempotence: bool = setting("FLOWLEDGER_KAFKA_IDEMPOTENCE", True, switch)
    """Idempotent producer (needs ``acks=all``); the embedded Tansu broker lacks it."""
    security_protocol: str = setting(
        "FLOWLEDGER_KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        one_of(*SECURITY_PROTOCOLS, case=str.upper),
    )
    sasl_mechanism: str | None = setting("FLOWLEDGER_KAFKA_SASL_MECHANISM", None, str.upper)
    """Checked only with a ``SASL_*`` security protocol."""
    sasl_username: str | None = setting("FLOWLEDGER_KAFKA_SASL_USERNAME", None, text)
    sasl_password: str | None = setting("FLOWLEDGER_KAFKA_SASL_PASSWORD", None, text)
    ssl_cafile: str | None = setting("FLOWLEDGER_KAFKA_SSL_CAFILE", None, text)
    ssl_certfile: str | None = setting("FLOWLEDGER_KAFKA_SSL_CERTFILE", None, text)
    ssl_keyfile: str | None = setting("FLOWLEDGER_KAFKA_SSL_KEYFILE", None, text)
    ssl_key_password: str | None = setting("FLOWLEDGER_KAFKA_SSL_KEY_PASSWORD", None, text)
    client_id: str = setting("FLOWLEDGER_KAFKA_CLIENT_ID", "flowledger", text)
    linger_ms: int = setting("FLOWLEDGER_KAFKA_LINGER_MS", 5, integer(minimum=0))
    compression: str = setting("FLOWLEDGER_KAFKA_COMPRESSION", "none", one_of(*COMPRESSIONS))
    request_timeout_ms: int = setting(
        "FLOWLEDGER_KAFKA_REQUEST_TIMEOUT_MS", 5000, integer(minimum=100)
    )
    check_interval_s: float = setting("FLOWLEDGER_KAFKA_CHECK_INTERVAL", 5.0, seconds())
    """How often an idle relay checks that the broker still holds what it published."""
    fast_groups: bool = setting("FLOWLEDGER_KAFKA_FAST_GROUPS", False, switch)
    """Short consumer group timings (one machine: join a group in about a second)."""

    def __post_init__(self) -> None:
        if self.idempotence and self.acks != "all":
            raise SettingsError(
                "FLOWLEDGER_KAFKA_IDEMPOTENCE needs FLOWLEDGER_KAFKA_ACKS=all (or set it to false)"
            )
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise SettingsError(
                    "FLOWLEDGER_KAFKA_SASL_MECHANISM must be one of "
                    f"{', '.join(SASL_MECHANISMS)} with FLOWLEDGER_KAFKA_SECURITY_PROTOCOL="
                    f"{self.security_protocol}"
                )
            if not (self.sasl_username and self.sasl_password):
                raise SettingsError(
                    "FLOWLEDGER_KAFKA_SASL_USERNAME and FLOWLEDGER_KAFKA_SASL_PASSWORD are "
                    f"required with FLOWLEDGER_KAFKA_SECURITY_PROTOCOL={self.security_protocol}"
                )

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSettings | None:
        """The settings, or None when no ``KAFKA_BOOTSTRAP_SERVERS`` is configured."""
        if not settings.kafka_bootstrap_servers:
            return None
        return cls.from_env(settings.extra, settings.kafka_bootstrap_servers)

    @classmethod
    def from_env(cls, env: Mapping[str, str], bootstrap_servers: str) -> KafkaSettings:
        return read_settings(cls, env, bootstrap_servers=bootstrap_servers)

    def client_kwargs(self) -> dict[str, Any]:
        """What every aiokafka client (producer, consumer, admin) takes."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context  # noqa: PLC0415

            kwargs["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile,
                certfile=self.ssl_certfile,
                keyfile=self.ssl_keyfile,
                password=self.ssl_key_password,
            )
        return kwargs

    def producer_kwargs(self) -> dict[str, Any]:
        return {
            **self.client_kwargs(),
            "acks": self.acks if self.acks == "all" else int(self.acks),
            "enable_idempotence": self.idempotence,
            "linger_ms": self.linger_ms,
            "compression_type": None if self.compression == "none" else self.compression,
            "retry_backoff_ms": 100,
            "metadata_max_age_ms": 5000,
        }

    def consumer_kwargs(self) -> dict[str, Any]:
        return {
            **self.client_kwargs(),
            "enable_auto_commit": False,
            "retry_backoff_ms": 100,
            "metadata_max_age_ms": 5000,
        }
