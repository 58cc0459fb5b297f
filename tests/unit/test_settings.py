"""Settings from the environment: each capability's typed settings, their defaults, the README's
configuration table, and a bad value stopping any ``flowledger`` command at start."""

from __future__ import annotations

import dataclasses
import math
import re
import string
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.cli.main import main
from flowledger.cli.settings import CAPABILITY_SETTINGS, check_settings
from flowledger.executor.settings import ExecutorSettings
from flowledger.http.events.settings import StreamSettings
from flowledger.kafka.config import KafkaSettings
from flowledger.projections.settings import ProjectionSettings
from flowledger.runtime.environment import (
    FALSE_WORDS,
    TRUE_WORDS,
    Variable,
    integer,
    one_of,
    read_settings,
    seconds,
    setting,
    switch,
    variables,
)
from flowledger.runtime.settings import Settings, SettingsError, get_settings, load_settings
from flowledger.security.settings import SecuritySettings
from flowledger.webhooks.settings import WebhookSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_CLASSES: tuple[type[Any], ...] = (Settings, *CAPABILITY_SETTINGS)
READ_ELSEWHERE = {"FLOWLEDGER_MIGRATIONS_DIR", "OTEL_EXPORTER_OTLP_ENDPOINT"}
"""Variables the README lists that no settings class reads: the Alembic scripts' folder (read
by the migrations, before any settings) and OpenTelemetry's own (the SDK reads them)."""


def declared() -> dict[str, tuple[type[Any], str, Variable]]:
    """Every declared variable: its settings class and field."""
    found: dict[str, tuple[type[Any], str, Variable]] = {}
    for settings_class in SETTINGS_CLASSES:
        for field_name, variable in variables(settings_class).items():
            assert variable.name not in found, f"{variable.name} is declared twice"
            found[variable.name] = (settings_class, field_name, variable)
    return found


def default_of(settings_class: type[Any], field_name: str) -> object:
    return next(f.default for f in dataclasses.fields(settings_class) if f.name == field_name)


def field_type(settings_class: type[Any], field_name: str) -> object:
    return typing.get_type_hints(settings_class)[field_name]


def read(settings_class: type[Any], env: dict[str, str]) -> object:
    """A capability's settings from ``env``, as a process reads them."""
    return CAPABILITY_SETTINGS[settings_class](Settings(extra=env))


# ---------------------------------------------------------------------------- defaults


def test_an_empty_environment_gives_every_default() -> None:
    assert load_settings({}) == Settings()
    assert ExecutorSettings.from_settings(Settings()) == ExecutorSettings()
    assert SecuritySettings.from_env({}) == SecuritySettings()
    assert WebhookSettings.from_settings(Settings()) == WebhookSettings()
    assert StreamSettings.from_settings(Settings()) == StreamSettings()
    assert ProjectionSettings.from_settings(Settings()) == ProjectionSettings()
    assert KafkaSettings.from_env({}, "broker:9092") == KafkaSettings("broker:9092")


@pytest.mark.parametrize(
    "name", sorted(name for name, (_, _, v) in declared().items() if v.blank_is_unset)
)
def test_a_blank_variable_counts_as_unset(name: str) -> None:
    settings_class, field_name, _ = declared()[name]
    for blank in ("", "  "):
        if settings_class is Settings:
            value = getattr(load_settings({name: blank}), field_name)
        else:
            value = getattr(read(settings_class, {name: blank}), field_name)
        assert value == default_of(settings_class, field_name)


def test_an_empty_public_paths_list_opens_nothing() -> None:
    assert SecuritySettings.from_env({"FLOWLEDGER_PUBLIC_PATHS": ""}).public_paths == ()


def test_core_values_are_read_with_their_types() -> None:
    settings = load_settings(
        {
            "FLOWLEDGER_PORT": "9000",
            "FLOWLEDGER_DATA_DIR": "/var/lib/flowledger",
            "FLOWLEDGER_LOG_LEVEL": "debug",
            "FLOWLEDGER_LOG_FORMAT": "Console",
            "FLOWLEDGER_FOLLOWER_LINGER": "0.005",
            "FLOWLEDGER_FOLLOWER_NICENESS": "19",
            "FLOWLEDGER_WORKER_METRICS_PORT": "0",
            "OTEL_SERVICE_NAME": "passes-through",
        }
    )
    assert settings.port == 9000
    assert settings.data_dir == Path("/var/lib/flowledger")
    assert (settings.log_level, settings.log_format) == ("DEBUG", "console")
    assert settings.follower_linger_s == 0.005
    assert settings.follower_niceness == 19
    assert settings.worker_metrics_port is None  # 0: no metrics server
    assert settings.extra["OTEL_SERVICE_NAME"] == "passes-through"


def test_capability_values_are_read_from_the_raw_environment() -> None:
    core = Settings(
        follower_batch_size=7,
        follower_idle_wait_s=0.25,
        extra={
            "FLOWLEDGER_EXECUTOR_MAX_CALLS": "3",
            "FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL": "0.5",
            "FLOWLEDGER_EXECUTOR_GROUP": "blue",
            "FLOWLEDGER_STREAM_KEEPALIVE": "0.3",
            "FLOWLEDGER_WEBHOOK_CONCURRENCY": "4",
            "FLOWLEDGER_KAFKA_FAST_GROUPS": "yes",
            "FLOWLEDGER_PROJECTIONS_BATCH_SIZE": "9",
        },
    )
    executor = ExecutorSettings.from_settings(core)
    assert (executor.max_calls, executor.max_runs) == (3, 200)
    assert (executor.sweep_interval_s, executor.group) == (0.5, "blue")
    assert StreamSettings.from_settings(core) == StreamSettings(7, 0.25, 0.3)
    webhooks = WebhookSettings.from_settings(core)
    assert (webhooks.concurrency, webhooks.poll_interval_s) == (4, 0.25)
    kafka = KafkaSettings.from_env(core.extra, "broker:9092")
    assert kafka.fast_groups is True
    assert ProjectionSettings.from_settings(core).batch_size == 9  # not the followers' 7


@pytest.mark.parametrize("settings_class", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_settings_are_frozen(settings_class: type[Any]) -> None:
    assert settings_class.__dataclass_params__.frozen


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLOWLEDGER_PORT", "0"),
        ("FLOWLEDGER_PORT", "eighty"),
        ("FLOWLEDGER_LOG_FORMAT", "xml"),
        ("FLOWLEDGER_LOG_LEVEL", "loud"),
        ("FLOWLEDGER_READ_WAIT_TIMEOUT", "-1"),
        ("FLOWLEDGER_FOLLOWER_IDLE_WAIT", "nan"),
        ("FLOWLEDGER_FOLLOWER_BATCH_SIZE", "1.5"),
        ("FLOWLEDGER_PROJECTIONS_BATCH_SIZE", "0"),
        ("FLOWLEDGER_FOLLOWER_NICENESS", "20"),
        ("FLOWLEDGER_FOLLOWER_NICENESS", "-5"),
        ("FLOWLEDGER_BULK_MAX_RUNS", "20001"),
        ("FLOWLEDGER_WORKER_METRICS_PORT", "-9100"),
        ("FLOWLEDGER_EXECUTOR_MAX_CALLS", "0"),
        ("FLOWLEDGER_EXECUTOR_MAX_RUNS", "many"),
        ("FLOWLEDGER_EXECUTOR_SWEEP_INTERVAL", "-2"),
        ("FLOWLEDGER_KAFKA_FAST_GROUPS", "sometimes"),
        ("FLOWLEDGER_KAFKA_LINGER_MS", "-1"),
        ("FLOWLEDGER_KAFKA_REQUEST_TIMEOUT_MS", "99"),
        ("FLOWLEDGER_WEBHOOK_TIMEOUT", "0"),
        ("FLOWLEDGER_WEBHOOK_MAX_ATTEMPTS", "0"),
        ("FLOWLEDGER_WEBHOOK_RETRY_MAX", "inf"),
        ("FLOWLEDGER_STREAM_KEEPALIVE", "0"),
        ("FLOWLEDGER_AUDIT_PURGE_INTERVAL", "1.5"),
        ("FLOWLEDGER_WORKFLOW_GRANTS", "sure"),
        ("FLOWLEDGER_DB_POOL_SIZE", "4"),
        ("FLOWLEDGER_DB_IDLE_TIMEOUT", "-1"),
        ("FLOWLEDGER_DB_RESERVED_CONNECTIONS", "-3"),
        ("FLOWLEDGER_DB_RETRY", "soon"),
    ],
)
def test_a_value_that_cannot_be_used_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{name} must .*, got {re.escape(repr(value))}$"):
        check_settings(load_settings({name: value}))


TYPED = sorted(
    name
    for name, (settings_class, field_name, _) in declared().items()
    if field_type(settings_class, field_name) in (int, float, bool, int | None)
)
SWITCH_WORDS = {*TRUE_WORDS, *FALSE_WORDS}
MEANINGFUL_WORDS = {*SWITCH_WORDS, "forever"}  # forever: FLOWLEDGER_AUDIT_RETENTION_DAYS


@pytest.mark.parametrize("name", TYPED)
@given(
    word=st.text(string.ascii_letters + "-_ ", min_size=1, max_size=12).filter(
        lambda w: w.strip() and w.strip().lower() not in MEANINGFUL_WORDS
    )
)
def test_words_are_refused_where_a_number_or_switch_is_expected(name: str, word: str) -> None:
    """Words such as ``inf`` and ``nan``, which float() reads, included."""
    with pytest.raises(SettingsError, match=f"^{name} "):
        check_settings(load_settings({name: word}))


@given(
    value=st.integers(min_value=-(10**6), max_value=10**6),
    minimum=st.integers(0, 100),
    span=st.none() | st.integers(0, 1000),
)
def test_an_integer_is_read_exactly_and_checked_against_its_bounds(
    value: int, minimum: int, span: int | None
) -> None:
    maximum = None if span is None else minimum + span
    parse = integer(minimum=minimum, maximum=maximum)
    if value < minimum:
        with pytest.raises(ValueError, match=f"at least {minimum}"):
            parse(str(value))
    elif maximum is not None and value > maximum:
        with pytest.raises(ValueError, match=f"at most {maximum}"):
            parse(str(value))
    else:
        assert parse(f" {value} ") == value


@given(value=st.floats(allow_nan=True, allow_infinity=True), above_zero=st.booleans())
def test_seconds_are_finite_and_not_negative(value: float, above_zero: bool) -> None:
    parse = seconds(above_zero=above_zero)
    usable = math.isfinite(value) and (value > 0 if above_zero else value >= 0)
    if usable:
        assert parse(repr(value)) == value
    else:
        with pytest.raises(ValueError, match="must"):
            parse(repr(value))


@given(word=st.sampled_from(sorted(SWITCH_WORDS)), pad=st.sampled_from(["", " "]), data=st.data())
def test_a_switch_reads_its_words_in_any_case(word: str, pad: str, data: st.DataObject) -> None:
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
    assert switch(f"{pad}{cased}{pad}") is (word in TRUE_WORDS)


def test_a_choice_is_normalised_before_it_is_checked() -> None:
    assert one_of("PLAIN", "SSL", case=str.upper)(" ssl ") == "SSL"
    with pytest.raises(ValueError, match="one of PLAIN, SSL"):
        one_of("PLAIN", "SSL", case=str.upper)("tls")


def test_a_reader_that_fails_is_reported_with_the_variable_and_the_text() -> None:
    @dataclasses.dataclass(frozen=True)
    class Limits:
        depth: int = setting("X_DEPTH", 1, int)  # int() says what is wrong in its own words

    assert read_settings(Limits, {"X_DEPTH": "4"}) == Limits(4)
    with pytest.raises(SettingsError, match=r"^X_DEPTH .*, got 'deep'$"):
        read_settings(Limits, {"X_DEPTH": "deep"})


def test_rules_across_variables_name_them() -> None:
    with pytest.raises(SettingsError, match=r"FLOWLEDGER_JWT_ALGORITHM ES256 needs .*PUBLIC_KEY"):
        SecuritySettings.from_env(
            {"FLOWLEDGER_JWT_SECRET": "s", "FLOWLEDGER_JWT_ALGORITHM": "es256"}
        )
    with pytest.raises(SettingsError, match="FLOWLEDGER_KAFKA_SASL_USERNAME"):
        KafkaSettings.from_env(
            {
                "FLOWLEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "FLOWLEDGER_KAFKA_SASL_MECHANISM": "PLAIN",
            },
            "broker:9092",
        )


# ---------------------------------------------------------------------------- at start


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """os.environ for main(), whose settings are cached once per process."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize("name", TYPED)
@pytest.mark.parametrize("command", [["migrate", "current"], ["worker", "webhooks"], ["--help"]])
def test_a_bad_value_stops_any_command_at_start_with_one_line(
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    command: list[str],
) -> None:
    environment.setenv(name, "not-a-value")
    assert main(command) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"flowledger: {name} ")
    assert err.count("\n") == 1


def test_kafka_settings_are_checked_at_start_even_without_a_broker(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    environment.setenv("FLOWLEDGER_KAFKA_ACKS", "some")
    assert main(["migrate", "current"]) == 2
    assert capsys.readouterr().err.startswith("flowledger: FLOWLEDGER_KAFKA_ACKS ")


# ---------------------------------------------------------------------------- the README


def readme_rows() -> dict[str, str]:
    """The configuration table: each variable and its documented default."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, default_cell = (cell.strip() for cell in line.strip("|").split(" | ")[:2])
        names = [name.strip().strip("`") for name in names_cell.split(" / ")]
        names = [_expand(names[0], name) for name in names]
        defaults = default_cell.split(" / ")
        if len(defaults) != len(names):
            defaults = [default_cell] * len(names)
        rows.update(zip(names, defaults, strict=True))
    return rows


def _expand(first: str, name: str) -> str:
    """``_SASL_USERNAME`` after ``FLOWLEDGER_KAFKA_SASL_MECHANISM`` is
    ``FLOWLEDGER_KAFKA_SASL_USERNAME``."""
    if not name.startswith("_"):
        return name
    head = name.split("_")[1]
    return first[: first.index(f"_{head}_")] + name


def test_the_readme_table_lists_exactly_the_variables_read() -> None:
    documented = set(readme_rows())
    assert documented - READ_ELSEWHERE == set(declared())
    assert documented >= READ_ELSEWHERE


@pytest.mark.parametrize("name", sorted(declared()))
def test_the_readme_gives_each_variables_default(name: str) -> None:
    settings_class, field_name, variable = declared()[name]
    default = default_of(settings_class, field_name)
    cell = readme_rows()[name]
    if cell == "*(unset)*":
        assert default is None
        return
    literal = re.match(r"`([^`]*)`", cell)
    if literal is None:  # prose, such as "HS256 / RS256" (the key decides)
        assert default is None, cell
        return
    assert variable.parse(literal[1]) == default
