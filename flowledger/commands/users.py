"""Commands on users: register, update, change a password, sign out everywhere, delete.

Passwords arrive hashed (argon2id, ``flowledger.security.passwords``): no command, event or
log line holds a password. A user holds a claim on its email (case-insensitive), so two users
never share one; deleting a user releases it, ends every session of the user, and revokes the
API keys of the user that the caller names (the HTTP layer reads them from the ``api_keys``
projection; a key it could not see yet is refused anyway, since its user is deleted).
"""

from __future__ import annotations

from uuid import UUID

import msgspec

from flowledger.commands import Outcome
from flowledger.commands.names import record_claiming_name, record_releasing_name
from flowledger.domain.api_keys import ApiKey
from flowledger.domain.users import EMAIL_KIND, SettableStatus, User, email_key
from flowledger.eventlog.store import EventMetadata, EventStore

KIND = "user"


class RegisterUser(msgspec.Struct, frozen=True, kw_only=True):
    email: str
    name: str
    role: str
    password_hash: str


class UpdateUser(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    name: str | None = None
    role: str | None = None
    status: SettableStatus | None = None
    password_hash: str | None = None
    """A new password, set by an admin: every session of the user ends."""


class ChangePassword(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    password_hash: str


class SignOutEverywhere(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID


class DeleteUser(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    key_ids: list[UUID] = msgspec.field(default_factory=list)
    """The user's API keys to revoke with it."""


def register_user(store: EventStore, command: RegisterUser, meta: EventMetadata) -> Outcome[User]:
    user = User.register(
        email=command.email,
        name=command.name,
        role=command.role,
        password_hash=command.password_hash,
    )
    position = record_claiming_name(store, user, EMAIL_KIND, email_key(command.email), meta)
    return Outcome(user, position)


def update_user(store: EventStore, command: UpdateUser, meta: EventMetadata) -> Outcome[User]:
    user = store.get(User, command.user_id, kind=KIND)
    if command.name is not None:
        user.rename(command.name)
    if command.role is not None:
        user.change_role(command.role)
    if command.password_hash is not None:
        user.change_password(command.password_hash)
    user.switch(command.status)
    return Outcome(user, store.record(user, metadata=meta))


def change_password(
    store: EventStore, command: ChangePassword, meta: EventMetadata
) -> Outcome[User]:
    user = store.get(User, command.user_id, kind=KIND)
    user.change_password(command.password_hash)
    return Outcome(user, store.record(user, metadata=meta))


def sign_out_everywhere(
    store: EventStore, command: SignOutEverywhere, meta: EventMetadata
) -> Outcome[User]:
    user = store.get(User, command.user_id, kind=KIND)
    user.sign_out_everywhere()
    return Outcome(user, store.record(user, metadata=meta))


def delete_user(store: EventStore, command: DeleteUser, meta: EventMetadata) -> Outcome[User]:
    user = store.get(User, command.user_id, kind=KIND)
    if user.is_deleted:
        return Outcome(user, None)
    user.delete()
    keys = [store.find(ApiKey, key_id) for key_id in command.key_ids]
    revoked = [key for key in keys if key is not None and key.user_id == user.id]
    for key in revoked:
        key.revoke()
    position = record_releasing_name(store, user, EMAIL_KIND, user.email_key, meta, revoked)
    return Outcome(user, position)
