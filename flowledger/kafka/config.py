"""Kafka settings from the environment (``KAFKA_BOOTSTRAP_SERVERS`` and ``FLOWLEDGER_KAFKA_*``),
and the aiokafka client arguments they make. The README's settings table lists them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from flowledger.eventlog.envelope import DEFAULT_TOPIC_PREFIX
from flowledger.runtime.settings import Settings, SettingsError, _float, _int

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSIONS: Final = ("none", "gzip", "snappy", "lz4", "zstd")
ACKS: Final = ("all", "1", "0")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    partitions: int = 3
    replication_factor: int = 1
    acks: str = "all"
    idempotence: bool = True
    """Idempotent producer (needs ``acks=all``); the embedded Tansu broker lacks it."""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = None
    client_id: str = "flowledger"
    linger_ms: int = 5
    compression: str = "none"
    request_timeout_ms: int = 5000
    check_interval_s: float = 5.0
    """How often an idle relay checks that the broker still holds what it published."""

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSettings | None:
        """The settings, or None when no ``KAFKA_BOOTSTRAP_SERVERS`` is configured."""
        if not settings.kafka_bootstrap_servers:
            return None
        return cls.from_env(settings.extra, settings.kafka_bootstrap_servers)

    @classmethod
    def from_env(cls, env: Mapping[str, str], bootstrap_servers: str) -> KafkaSettings:
        def text(key: str, default: str | None = None) -> str | None:
            return env.get(f"FLOWLEDGER_KAFKA_{key}") or default

        config = cls(
            bootstrap_servers=bootstrap_servers,
            topic_prefix=text("TOPIC_PREFIX", DEFAULT_TOPIC_PREFIX) or DEFAULT_TOPIC_PREFIX,
            partitions=_int(env, "FLOWLEDGER_KAFKA_PARTITIONS", 3, minimum=1),
            replication_factor=_int(env, "FLOWLEDGER_KAFKA_REPLICATION_FACTOR", 1, minimum=1),
            acks=(text("ACKS", "all") or "all").lower(),
            idempotence=_bool(env, "FLOWLEDGER_KAFKA_IDEMPOTENCE", True),
            security_protocol=(text("SECURITY_PROTOCOL", "PLAINTEXT") or "").upper(),
            sasl_mechanism=(text("SASL_MECHANISM") or "").upper() or None,
            sasl_username=text("SASL_USERNAME"),
            sasl_password=text("SASL_PASSWORD"),
            ssl_cafile=text("SSL_CAFILE"),
            ssl_certfile=text("SSL_CERTFILE"),
            ssl_keyfile=text("SSL_KEYFILE"),
            ssl_key_password=text("SSL_KEY_PASSWORD"),
            client_id=text("CLIENT_ID", "flowledger") or "flowledger",
            linger_ms=_int(env, "FLOWLEDGER_KAFKA_LINGER_MS", 5),
            compression=(text("COMPRESSION", "none") or "none").lower(),
            request_timeout_ms=_int(env, "FLOWLEDGER_KAFKA_REQUEST_TIMEOUT_MS", 5000, minimum=100),
            check_interval_s=_float(env, "FLOWLEDGER_KAFKA_CHECK_INTERVAL", 5.0),
        )
        config.validate()
        return config

    def validate(self) -> None:
        def bad(key: str, problem: str) -> SettingsError:
            return SettingsError(f"FLOWLEDGER_KAFKA_{key} {problem}")

        if self.acks not in ACKS:
            raise bad("ACKS", f"must be one of {', '.join(ACKS)}, got {self.acks!r}")
        if self.idempotence and self.acks != "all":
            raise bad("IDEMPOTENCE", "needs FLOWLEDGER_KAFKA_ACKS=all (or set it to false)")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise bad("SECURITY_PROTOCOL", f"must be one of {', '.join(SECURITY_PROTOCOLS)}")
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise bad("SASL_MECHANISM", f"must be one of {', '.join(SASL_MECHANISMS)}")
            if not (self.sasl_username and self.sasl_password):
                raise bad("SASL_USERNAME", "and FLOWLEDGER_KAFKA_SASL_PASSWORD are required")
        if self.compression not in COMPRESSIONS:
            raise bad("COMPRESSION", f"must be one of {', '.join(COMPRESSIONS)}")
        if not all(c.isalnum() or c in "._-" for c in self.topic_prefix):
            raise bad("TOPIC_PREFIX", "may only contain letters, digits, '.', '_' and '-'")

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


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = (env.get(key) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{key} must be true or false, got {raw!r}")
