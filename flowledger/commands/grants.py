"""Commands on who may use a workflow: grant and revoke access, transfer ownership.

Who may *issue* them (the owner or an admin) is decided before the command runs, by the
access policy (``flowledger.http.grants.access``); the handlers check the facts the domain
cannot see: that an API key named as a principal exists and is not revoked, and that a user
named as one exists and is not deleted.
"""

from __future__ import annotations

from uuid import UUID

import msgspec

from flowledger.commands import Outcome
from flowledger.commands.workflows import KIND
from flowledger.domain.api_keys import ApiKey
from flowledger.domain.errors import FieldProblem, raise_if_any
from flowledger.domain.grants import normal_principal
from flowledger.domain.users import User
from flowledger.domain.workflows import Workflow
from flowledger.eventlog.store import EventMetadata, EventStore


class GrantWorkflowAccess(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: UUID
    principal: str
    can_view: bool
    can_execute: bool


class RevokeWorkflowAccess(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: UUID
    principal: str


class TransferWorkflowOwnership(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: UUID
    owner: str


def grant_workflow_access(
    store: EventStore, command: GrantWorkflowAccess, meta: EventMetadata
) -> Outcome[Workflow]:
    workflow = store.get(Workflow, command.workflow_id, kind=KIND)
    raise_if_any(unknown_key_problems(store, command.principal, "principal"))
    workflow.grant(command.principal, can_view=command.can_view, can_execute=command.can_execute)
    return Outcome(workflow, store.record(workflow, metadata=meta))


def revoke_workflow_access(
    store: EventStore, command: RevokeWorkflowAccess, meta: EventMetadata
) -> Outcome[Workflow]:
    workflow = store.get(Workflow, command.workflow_id, kind=KIND)
    workflow.revoke(command.principal)
    return Outcome(workflow, store.record(workflow, metadata=meta))


def transfer_workflow_ownership(
    store: EventStore, command: TransferWorkflowOwnership, meta: EventMetadata
) -> Outcome[Workflow]:
    workflow = store.get(Workflow, command.workflow_id, kind=KIND)
    raise_if_any(unknown_key_problems(store, command.owner, "owner"))
    workflow.transfer_ownership(command.owner)
    return Outcome(workflow, store.record(workflow, metadata=meta))


def unknown_key_problems(store: EventStore, principal: str, field: str) -> list[FieldProblem]:
    """A ``key:<id>`` principal must name an API key that exists and is not revoked, a
    ``user:<id>`` one a user that exists and is not deleted (a typo would otherwise grant
    nothing, silently). JWT subjects cannot be checked."""
    kind, _, key_id = normal_principal(principal).partition(":")
    if kind == "user":
        return _unknown_user_problems(store, key_id, field)
    if kind != "key":
        return []
    try:
        key = store.find(ApiKey, UUID(key_id), copy=False)
    except ValueError:
        return []  # malformed: the domain names the problem
    if key is None:
        return [FieldProblem(field, f"no API key has the id {key_id}")]
    if key.revoked:
        return [FieldProblem(field, f"API key {key_id} is revoked")]
    return []


def _unknown_user_problems(store: EventStore, user_id: str, field: str) -> list[FieldProblem]:
    try:
        user = store.find(User, UUID(user_id))
    except ValueError:
        return []  # malformed: the domain names the problem
    if user is None:
        return [FieldProblem(field, f"no user has the id {user_id}")]
    if user.is_deleted:
        return [FieldProblem(field, f"user {user_id} is deleted")]
    return []
