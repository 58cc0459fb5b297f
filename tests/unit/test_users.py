"""Users and sessions as the domain has them: what a user may become, when a session holds,
how a refresh token rotates and what its reuse does; spec 003's roles and per-key
permissions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.domain.access import Permission, Principal, Role, role_problem
from flowledger.domain.api_keys import ApiKey, permissions_problems
from flowledger.domain.errors import Conflict, InvalidInput
from flowledger.domain.redaction import redact
from flowledger.domain.user_sessions import Session, SessionRefused, hash_token
from flowledger.domain.users import User, email_key, password_problems

pytestmark = pytest.mark.unit

HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def user(**fields: str) -> User:
    given_fields = {"email": "Ada@Example.com", "name": "Ada", "role": "editor", **fields}
    return User.register(password_hash=HASH, **given_fields)


def session_of(person: User, token: str = "first") -> Session:
    return Session.start(
        session_id=uuid.uuid4(),
        user_id=person.id,
        user_version=person.version,
        token_hash=hash_token(token),
        expires_at=NOW + timedelta(days=30),
    )


def test_a_registered_user_is_active_and_keeps_only_a_hash() -> None:
    ada = user()
    assert (ada.status, ada.role, ada.email_key) == ("active", Role.EDITOR, "ada@example.com")
    registered = ada.collect_events()[0]
    assert registered.password_hash == HASH  # type: ignore[attr-defined]
    assert "password" not in vars(registered)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "no-at-sign"}, "email"),
        ({"email": "two@@example.com"}, "email"),
        ({"name": ""}, "name"),
        ({"role": "developer"}, "role"),
    ],
)
def test_a_user_with_a_bad_field_is_refused(fields: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        user(**fields)
    assert refused.value.problems[0].field == field


def test_a_password_hash_must_be_argon2id() -> None:
    with pytest.raises(InvalidInput, match="argon2id"):
        User.register(email="a@b.c", name="A", role="viewer", password_hash="$2b$12$bcrypt")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "8 to 256"),
        ("x" * 257, "8 to 256"),
        ("        ", "blank"),
        ("tab\there!", "control"),
        ("ADA@example.com", "email"),
    ],
)
def test_weak_passwords_are_refused(password: str, reason: str) -> None:
    problems = password_problems(password, "ada@example.com")
    assert problems and reason in problems[0].message


@given(st.text(min_size=8, max_size=256).filter(lambda p: p.strip() and p.isprintable()))
def test_any_printable_password_of_8_to_256_characters_is_accepted(password: str) -> None:
    assert password_problems(password, "someone@else.example") == []


def test_spec_003_roles_are_named_with_ours() -> None:
    assert role_problem("editor") is None
    assert role_problem("developer") == (
        "must be one of viewer, operator, editor, admin (spec 003's 'developer' is 'editor')"
    )
    assert "spec 003's 'user' is 'operator'" in str(role_problem("user"))
    assert role_problem("root") == "must be one of viewer, operator, editor, admin"


def test_a_session_holds_until_the_user_is_signed_out_everywhere() -> None:
    ada = user()
    earlier = session_of(ada)
    assert ada.session_is_current(earlier.user_version)
    ada.sign_out_everywhere()
    assert not ada.session_is_current(earlier.user_version)
    later = session_of(ada)
    assert ada.session_is_current(later.user_version)


@pytest.mark.parametrize(
    "change",
    [
        lambda u: u.switch("disabled"),
        lambda u: u.change_password(HASH),
        lambda u: u.delete(),
    ],
    ids=["disabled", "new password", "deleted"],
)
def test_disabling_resetting_the_password_or_deleting_ends_every_session(change: object) -> None:
    ada = user()
    started = session_of(ada)
    change(ada)  # type: ignore[operator]
    assert not ada.session_is_current(started.user_version)


def test_an_enabled_user_signs_in_again_but_old_sessions_stay_over() -> None:
    ada = user()
    old = session_of(ada)
    ada.switch("disabled")
    with pytest.raises(Conflict, match="disabled"):
        ada.check_can_sign_in()
    ada.switch("active")
    ada.check_can_sign_in()
    assert not ada.session_is_current(old.user_version)
    assert ada.session_is_current(session_of(ada).user_version)


def test_a_deleted_user_cannot_be_changed() -> None:
    ada = user()
    ada.delete()
    for change in (lambda: ada.rename("B"), lambda: ada.switch("active"), ada.sign_out_everywhere):
        with pytest.raises(Conflict, match="deleted"):
            change()
    version = ada.version
    ada.delete()
    assert ada.version == version  # deleting twice records one deletion


def test_refreshing_rotates_the_token_and_a_reused_one_ends_the_session() -> None:
    session = session_of(user(), "first")
    session.refresh(hash_token("first"), hash_token("second"), NOW)
    with pytest.raises(SessionRefused, match="not valid"):
        session.refresh(hash_token("a guess"), hash_token("third"), NOW)
    assert not session.is_ended  # an unknown token changes nothing
    session.refresh(hash_token("first"), hash_token("third"), NOW)  # used twice
    assert session.ended_reason == "refresh_token_reused"
    with pytest.raises(SessionRefused, match="ended"):
        session.refresh(hash_token("second"), hash_token("fourth"), NOW)


def test_an_expired_session_refuses_its_refresh_token() -> None:
    session = session_of(user(), "first")
    with pytest.raises(SessionRefused, match="expired"):
        session.refresh(hash_token("first"), hash_token("x"), NOW + timedelta(days=31))


def test_a_key_limited_to_some_permissions_may_use_only_those() -> None:
    limited = Principal(
        actor="key:x", role=Role.EDITOR, kind="api_key", permissions=frozenset({Permission.READ})
    )
    assert limited.can(Permission.READ) and not limited.can(Permission.MANAGE)
    assert limited.effective_permissions == {Permission.READ}
    assert permissions_problems(["read", "execute"], "operator") == []
    assert "does not have manage" in permissions_problems(["manage"], "operator")[0].message
    assert permissions_problems([], "operator")[0].field == "permissions"
    assert permissions_problems(["fly"], "operator")[0].field == "permissions"


def test_a_key_issued_before_users_existed_belongs_to_nobody() -> None:
    state: dict[str, object] = {"name": "old", "role": "viewer"}
    ApiKey.Issued.upcast_v1_v2(state)
    assert state["user_id"] is None and state["permissions"] is None


def test_hashes_of_passwords_and_tokens_are_masked_wherever_events_are_shown() -> None:
    shown = redact({"password_hash": HASH, "token_hash": "ab", "name": "Ada"})
    assert shown == {"password_hash": "********", "token_hash": "********", "name": "Ada"}
    assert email_key(" Ada@Example.COM ") == "ada@example.com"
