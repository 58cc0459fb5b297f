"""Per-workflow grants in the domain: the Workflow aggregate's owner and grants as
given/when/then specifications, and the access rule (:func:`permits`) as properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st

from flowledger.domain.access import Permission, Principal, Role
from flowledger.domain.errors import Conflict, InvalidInput
from flowledger.domain.grants import Access, permits, principals_of
from flowledger.domain.workflows import Workflow
from tests.support.domain import given, history, names, when
from tests.unit.test_workflow import AGENTS, OWNER, TWO_STEPS, created, problems

pytestmark = pytest.mark.unit

KEY = "key:00000000-0000-4000-8000-0000000000b0"


def test_the_creator_owns_a_new_workflow_and_nobody_else_has_a_grant() -> None:
    workflow = given(created())
    assert workflow.owner == OWNER
    assert workflow.grants == {}


def test_granting_records_exactly_the_access_given_and_again_records_nothing() -> None:
    start = created()
    workflow = given(start)
    shouting = "key:" + KEY.removeprefix("key:").upper()  # ids are written in lower case
    events = when(workflow, lambda w: w.grant(shouting, can_view=True, can_execute=True))
    assert names(events) == ["Workflow.AccessGranted"]
    assert (events[0].principal, events[0].can_view, events[0].can_execute) == (KEY, True, True)
    assert when(workflow, lambda w: w.grant(KEY, can_view=True, can_execute=True)) == []
    narrowed = when(workflow, lambda w: w.grant(KEY, can_view=True, can_execute=False))
    assert names(narrowed) == ["Workflow.AccessGranted"]
    assert given([*start, *events, *narrowed]).grants == {KEY: Access(True, False)}


def test_revoking_removes_the_grant_and_revoking_nothing_records_nothing() -> None:
    start = created()
    workflow = given(start)
    granted = when(workflow, lambda w: w.grant("role:operator", can_view=True, can_execute=False))
    revoked = when(workflow, lambda w: w.revoke("role:operator"))
    assert names(revoked) == ["Workflow.AccessRevoked"]
    assert workflow.grants == {}
    assert when(workflow, lambda w: w.revoke("role:operator")) == []
    assert given([*start, *granted, *revoked]).grants == {}


@pytest.mark.parametrize(
    ("principal", "access", "field"),
    [
        ("alice", (True, False), "principal"),
        ("key:nope", (True, False), "principal"),
        ("jwt:", (True, False), "principal"),
        ("jwt:a/b", (True, False), "principal"),
        ("role:admin", (True, False), "principal"),
        (OWNER, (True, True), "principal"),
        ("role:viewer", (False, True), "can_view"),
        ("role:viewer", (False, False), "can_view"),
    ],
)
def test_an_invalid_grant_is_refused_and_records_nothing(
    principal: str, access: tuple[bool, bool], field: str
) -> None:
    workflow = given(created())
    with pytest.raises(InvalidInput) as raised:
        workflow.grant(principal, can_view=access[0], can_execute=access[1])
    assert [f for f, _ in problems(raised.value)] == [field]
    assert history(workflow) == []


def test_ownership_moves_to_one_actor_and_the_grants_stay() -> None:
    workflow = given(created())
    when(workflow, lambda w: w.grant("role:viewer", can_view=True, can_execute=False))
    events = when(workflow, lambda w: w.transfer_ownership("jwt:bob"))
    assert names(events) == ["Workflow.OwnerChanged"]
    assert (events[0].owner, events[0].previous) == ("jwt:bob", OWNER)
    assert workflow.owner == "jwt:bob" and "role:viewer" in workflow.grants
    assert when(workflow, lambda w: w.transfer_ownership("jwt:bob")) == []
    with pytest.raises(InvalidInput):
        workflow.transfer_ownership("role:editor")


def test_a_deleted_workflow_takes_no_new_grant_or_owner_but_may_lose_grants() -> None:
    workflow = given(created())
    when(workflow, lambda w: w.grant("role:viewer", can_view=True, can_execute=False))
    when(workflow, lambda w: w.delete())
    with pytest.raises(Conflict):
        workflow.grant(KEY, can_view=True, can_execute=False)
    with pytest.raises(Conflict):
        workflow.transfer_ownership("jwt:bob")
    assert names(when(workflow, lambda w: w.revoke("role:viewer"))) == ["Workflow.AccessRevoked"]


def test_a_workflow_recorded_before_owners_existed_is_owned_by_its_creator() -> None:
    """``Workflow.Created`` version 1 had no owner: the upcast reads the actor of its
    metadata, as the migration fills ``workflows.owner`` from ``created_by``."""
    event = Workflow.create(name="w", definition=TWO_STEPS, agents=AGENTS, owner=OWNER)
    state: dict[str, Any] = {"metadata": {"actor": "jwt:carol"}, "name": "w"}
    Workflow.Created.upcast_v1_v2(state)
    assert state["owner"] == "jwt:carol"
    assert event.owner == OWNER


# -- the access rule ---------------------------------------------------------------------

ACTORS = ["key:00000000-0000-4000-8000-0000000000c1", "jwt:alice", "jwt:bob"]
principals = st.builds(
    lambda actor, role: Principal(actor=actor, role=role, kind="jwt"),
    st.sampled_from(ACTORS),
    st.sampled_from(list(Role)),
)
accesses = st.sampled_from([Access(True, False), Access(True, True)])
grant_maps = st.dictionaries(
    st.sampled_from([*ACTORS, "role:viewer", "role:operator", "role:editor"]), accesses
)


@for_all(principals, st.sampled_from(list(Permission)), st.sampled_from(ACTORS), grant_maps)
def test_the_role_is_the_ceiling_and_admins_and_owners_have_everything_it_allows(
    who: Principal, permission: Permission, owner: str, grants: dict[str, Access]
) -> None:
    allowed = permits(who, permission, owner, grants)
    if not who.can(permission):
        assert not allowed
    elif who.is_admin or who.actor == owner:
        assert allowed
    else:
        applicable = [grants[p] for p in principals_of(who) if p in grants]
        assert allowed == any(a.allows(permission) for a in applicable)
        assert permission not in (Permission.MANAGE, Permission.ADMIN) or not allowed


@for_all(principals, st.sampled_from(ACTORS), grant_maps)
def test_whoever_may_execute_may_view(
    who: Principal, owner: str, grants: dict[str, Access]
) -> None:
    if permits(who, Permission.EXECUTE, owner, grants):
        assert permits(who, Permission.READ, owner, grants)


def test_a_role_grant_applies_to_that_role_and_every_role_above_it() -> None:
    grants = {"role:operator": Access(True, True)}
    for role, expected in [
        (Role.VIEWER, False),
        (Role.OPERATOR, True),
        (Role.EDITOR, True),
    ]:
        who = Principal(actor="jwt:x", role=role, kind="jwt")
        assert permits(who, Permission.READ, OWNER, grants) is expected, role
