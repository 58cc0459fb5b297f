"""API keys, roles and the access policy, as specifications (no I/O)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given as hypothesis_given
from hypothesis import strategies as st

from flowledger.commands.api_keys import new_api_key
from flowledger.domain.access import (
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    Role,
    highest_role,
    role_allows,
)
from flowledger.domain.api_keys import ApiKey, hash_api_key, visible_prefix
from flowledger.domain.errors import InvalidInput
from flowledger.projections.audit import audit_action
from flowledger.runtime.settings import Settings, SettingsError
from flowledger.security.policy import AccessPolicy, Decision, ResourceRef
from flowledger.security.settings import SecuritySettings
from tests.support.domain import given, history, names, when

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = new_api_key()


def issued(**overrides: Any) -> list[Any]:
    fields: dict[str, Any] = {
        "name": "ci",
        "role": "operator",
        "prefix": visible_prefix(KEY),
        "key_hash": hash_api_key(KEY),
        "expires_at": None,
        "now": NOW,
    }
    return history(ApiKey.issue(**{**fields, **overrides}))


def test_issuing_a_key_records_its_hash_and_prefix_never_the_secret() -> None:
    events = issued()
    assert names(events) == ["ApiKey.Issued"]
    assert KEY not in repr(vars(events[0]))
    key = given(events)
    assert key.role is Role.OPERATOR and key.prefix == KEY[:12]
    assert key.status_at(NOW) == "active" and key.revoked_at is None


def test_a_new_key_is_a_prefix_and_256_random_bits() -> None:
    other = new_api_key()
    assert other != KEY and KEY.startswith("flk_") and len(KEY) == 4 + 8 + 1 + 43
    assert hash_api_key(KEY) != hash_api_key(other) and len(hash_api_key(KEY)) == 64


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": " padded"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"role": "root"}, "role"),
        ({"expires_at": NOW}, "expires_at"),
        ({"expires_at": datetime(2030, 1, 1)}, "expires_at"),
        ({"key_hash": "plain"}, "key_hash"),
        ({"prefix": "abc"}, "prefix"),
    ],
)
def test_invalid_keys_are_refused_before_any_event(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        issued(**overrides)
    assert [p.field for p in refused.value.problems] == [field]


def test_a_key_expires_at_its_expiry() -> None:
    key = given(issued(expires_at=NOW + timedelta(days=1)))
    assert key.status_at(NOW + timedelta(hours=23)) == "active"
    assert key.status_at(NOW + timedelta(days=1)) == "expired"


def test_revoking_records_revoked_once() -> None:
    key = given(issued())
    assert names(when(key, lambda k: k.revoke())) == ["ApiKey.Revoked"]
    assert key.status_at(NOW) == "revoked" and key.revoked_at is not None
    assert when(key, lambda k: k.revoke()) == []


def test_key_events_have_audit_actions() -> None:
    assert audit_action("ApiKeyIssued", "api_key") == "create"
    assert audit_action("ApiKeyRevoked", "api_key") == "revoke"


def test_roles_are_cumulative() -> None:
    assert ROLE_PERMISSIONS[Role.VIEWER] == {Permission.READ}
    ordered = [ROLE_PERMISSIONS[role] for role in Role]
    assert all(lower < higher for lower, higher in itertools.pairwise(ordered))
    assert ROLE_PERMISSIONS[Role.ADMIN] == set(Permission)
    assert role_allows(Role.OPERATOR, Permission.EXECUTE)
    assert not role_allows(Role.OPERATOR, Permission.MANAGE)
    assert role_allows(Role.EDITOR, Permission.MANAGE)
    assert not role_allows(Role.EDITOR, Permission.ADMIN)


@hypothesis_given(st.lists(st.sampled_from([*Role, "root", 3])))
def test_the_highest_known_role_of_a_claim_wins(claim: list[Any]) -> None:
    known = [Role(c) for c in claim if isinstance(c, str) and c in set(Role)]
    assert highest_role(claim) == (max(known, key=list(Role).index) if known else None)


def principal(role: Role) -> Principal:
    return Principal(actor="key:x", role=role, kind="api_key")


class OnlyOwners:
    """A resource rule like the per-workflow grants ADR 0006 describes."""

    async def decide(
        self,
        who: Principal,
        permission: Permission,
        resource: ResourceRef,
        runtime: Any,
    ) -> Decision | None:
        verdict = {"mine": True, "theirs": False}.get(resource.id)
        return None if verdict is None else Decision(verdict, f"owner: {verdict}")


@pytest.mark.parametrize(
    ("role", "resource", "allowed"),
    [
        (Role.OPERATOR, None, True),
        (Role.OPERATOR, ResourceRef("workflow", "mine"), True),
        (Role.OPERATOR, ResourceRef("workflow", "theirs"), False),
        (Role.OPERATOR, ResourceRef("workflow", "ungoverned"), True),
        (Role.OPERATOR, ResourceRef("run", "theirs"), True),  # no rule for runs
        (Role.ADMIN, ResourceRef("workflow", "theirs"), True),
        (Role.VIEWER, ResourceRef("workflow", "mine"), False),  # the role is the ceiling
    ],
)
def test_a_resource_rule_can_only_narrow_what_the_role_allows(
    role: Role, resource: ResourceRef | None, allowed: bool
) -> None:
    policy = AccessPolicy(resource_rules={"workflow": OnlyOwners()})
    decision = asyncio.run(policy.decide(principal(role), Permission.EXECUTE, resource, None))  # type: ignore[arg-type]
    assert decision.allowed is allowed, decision.reason


def test_security_settings_have_safe_defaults() -> None:
    defaults = SecuritySettings.from_env({})
    assert defaults.public_paths == (
        "/health",
        "/health/ready",
        "/metrics",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/asyncapi.json",
    )
    assert defaults.rate_limit == ("minute", 600)
    assert defaults.audit_retention_days == 365
    assert not defaults.jwt_enabled and defaults.jwt_algorithms == ()


def test_security_settings_are_read_from_the_environment() -> None:
    parsed = SecuritySettings.from_env(
        {
            "FLOWLEDGER_PUBLIC_PATHS": "/health, /metrics, /schema/*",
            "FLOWLEDGER_RATE_LIMIT": "20/second",
            "FLOWLEDGER_AUDIT_RETENTION_DAYS": "forever",
            "FLOWLEDGER_JWT_SECRET": "s",
            "FLOWLEDGER_JWT_ALGORITHM": "hs512",
        }
    )
    assert parsed.public_paths == ("/health", "/metrics", "/schema/*")
    assert parsed.rate_limit == ("second", 20)
    assert parsed.audit_retention_days is None
    assert parsed.jwt_algorithms == ("HS512",)
    assert SecuritySettings.from_env({"FLOWLEDGER_RATE_LIMIT": "off"}).rate_limit is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLOWLEDGER_AUDIT_RETENTION_DAYS", "89"),
        ("FLOWLEDGER_AUDIT_RETENTION_DAYS", "a year"),
        ("FLOWLEDGER_RATE_LIMIT", "lots"),
        ("FLOWLEDGER_RATE_LIMIT", "0/minute"),
        ("FLOWLEDGER_PUBLIC_PATHS", "/api/v1/agents"),
        ("FLOWLEDGER_PUBLIC_PATHS", "/*"),
        ("FLOWLEDGER_PUBLIC_PATHS", "health"),
        ("FLOWLEDGER_JWT_ALGORITHM", "RS256"),  # no public key configured
        ("FLOWLEDGER_JWT_ALGORITHM", "none"),
        ("FLOWLEDGER_JWT_PUBLIC_KEY", "/no/such/file.pem"),
        ("FLOWLEDGER_JWT_LEEWAY", "-5"),
    ],
)
def test_unusable_security_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        SecuritySettings.from_env({name: value})


@pytest.mark.parametrize("key", ["short", " padded-admin-key-0123456789 "])
def test_a_weak_admin_key_is_refused(key: str) -> None:
    with pytest.raises(SettingsError, match="FLOWLEDGER_ADMIN_API_KEY"):
        SecuritySettings.from_settings(Settings(admin_api_key=key))
