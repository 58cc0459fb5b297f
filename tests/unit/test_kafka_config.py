"""Kafka settings from the environment, and the client arguments they make."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.eventlog.envelope import Envelope
from flowledger.kafka.config import KafkaSettings
from flowledger.kafka.consumer import Deduplicator, topic_pattern
from flowledger.runtime.settings import SettingsError
from tests.support.envelopes import envelope

pytestmark = pytest.mark.unit
BOOTSTRAP = "broker-1:9092,broker-2:9092"


def test_defaults_suit_a_real_cluster() -> None:
    config = KafkaSettings.from_env({}, BOOTSTRAP)
    producer = config.producer_kwargs()
    assert producer["bootstrap_servers"] == BOOTSTRAP
    assert producer["acks"] == "all"
    assert producer["enable_idempotence"] is True
    assert producer["compression_type"] is None
    assert config.topic_prefix == "flowledger"
    assert config.partitions == 3


def test_sasl_and_tls_settings_reach_the_clients() -> None:
    config = KafkaSettings.from_env(
        {
            "FLOWLEDGER_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "FLOWLEDGER_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "FLOWLEDGER_KAFKA_SASL_USERNAME": "relay",
            "FLOWLEDGER_KAFKA_SASL_PASSWORD": "pw",
            "FLOWLEDGER_KAFKA_ACKS": "all",
            "FLOWLEDGER_KAFKA_COMPRESSION": "gzip",
            "FLOWLEDGER_KAFKA_TOPIC_PREFIX": "acme.prod",
        },
        BOOTSTRAP,
    )
    kwargs = config.producer_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("relay", "pw")
    assert kwargs["ssl_context"] is not None
    assert kwargs["compression_type"] == "gzip"
    assert config.topic_prefix == "acme.prod"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"FLOWLEDGER_KAFKA_ACKS": "1"}, "IDEMPOTENCE"),
        ({"FLOWLEDGER_KAFKA_ACKS": "some"}, "ACKS"),
        ({"FLOWLEDGER_KAFKA_IDEMPOTENCE": "maybe"}, "IDEMPOTENCE"),
        ({"FLOWLEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "SASL_MECHANISM"),
        ({"FLOWLEDGER_KAFKA_COMPRESSION": "brotli"}, "COMPRESSION"),
        ({"FLOWLEDGER_KAFKA_TOPIC_PREFIX": "a/b"}, "TOPIC_PREFIX"),
        ({"FLOWLEDGER_KAFKA_PARTITIONS": "0"}, "PARTITIONS"),
    ],
)
def test_unusable_settings_are_refused_naming_the_variable(
    env: dict[str, str], problem: str
) -> None:
    with pytest.raises(SettingsError, match=problem):
        KafkaSettings.from_env(env, BOOTSTRAP)


def test_acks_1_works_without_idempotence() -> None:
    config = KafkaSettings.from_env(
        {"FLOWLEDGER_KAFKA_ACKS": "1", "FLOWLEDGER_KAFKA_IDEMPOTENCE": "false"}, BOOTSTRAP
    )
    assert config.producer_kwargs()["acks"] == 1


def test_topic_patterns_match_only_flowledgers_topics() -> None:
    every = re.compile(topic_pattern("flowledger"))
    assert every.match("flowledger.agents.v1") and every.match("flowledger.api_keys.v1")
    assert not every.match("flowledger.agents.v2") and not every.match("other.agents.v1")
    runs = re.compile(topic_pattern("acme.prod", ["run", "workflows"]))
    assert runs.match("acme.prod.runs.v1") and runs.match("acme.prod.workflows.v1")
    assert not runs.match("acme.prod.agents.v1") and not runs.match("acmexprod.runs.v1")


histories = st.dictionaries(st.uuids(), st.integers(1, 6), min_size=1, max_size=4)


@given(histories=histories, data=st.data())
def test_the_deduplicator_passes_each_version_once_in_order_through_any_replays(
    histories: dict[object, int], data: st.DataObject
) -> None:
    """Per aggregate, Kafka keeps order; the relay may repeat a batch or start over."""
    delivered: list[Envelope] = []
    for aggregate, versions in histories.items():
        stream = list(range(1, versions + 1))
        for _ in range(data.draw(st.integers(0, 2))):  # repeats of a prefix, in order
            cut = data.draw(st.integers(1, versions))
            stream = stream[:cut] + list(range(1, versions + 1))
        delivered += [envelope(aggregate_id=aggregate, aggregate_version=v) for v in stream]
    dedupe = Deduplicator()
    passed = [e for e in delivered if dedupe.is_new(e)]
    per_aggregate = Counter(e.aggregate_id for e in passed)
    assert per_aggregate == Counter(histories)
    for aggregate, versions in histories.items():
        mine = [e.aggregate_version for e in passed if e.aggregate_id == aggregate]
        assert mine == list(range(1, versions + 1))
