"""Users and sessions for tests: create a user through the API, sign in at the token endpoint
as an OAuth2 client does (form-encoded), and the tokens it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tests.support.http import ApiClient

USERS: Final = "/api/v1/users"
TOKEN: Final = "/api/v1/auth/token"
LOGOUT: Final = "/api/v1/auth/logout"
LOGOUT_ALL: Final = "/api/v1/auth/logout-all"
PASSWORD: Final = "correct horse battery staple"


@dataclass(frozen=True)
class Tokens:
    access: str
    refresh: str
    body: dict[str, Any]

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def create_user(
    api: ApiClient, email: str, role: str = "operator", password: str = PASSWORD, **fields: Any
) -> dict[str, Any]:
    """A new user, created by the client's current (admin) credential."""
    name = email.split("@", maxsplit=1)[0]
    body = {"email": email, "name": name, "role": role, "password": password}
    response = api.post(USERS, json={**body, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def token_request(api: ApiClient, form: dict[str, str], **kwargs: Any) -> Any:
    """A form-encoded POST to the token endpoint, with no credential (as a browser sends it)."""
    with api.as_key(None):
        return api.post(TOKEN, data=form, **kwargs)


def sign_in(api: ApiClient, email: str, password: str = PASSWORD) -> Tokens:
    response = token_request(
        api, {"grant_type": "password", "username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return tokens_of(response.json())


def refresh(api: ApiClient, refresh_token: str) -> Any:
    return token_request(api, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def tokens_of(body: dict[str, Any]) -> Tokens:
    return Tokens(body["access_token"], body["refresh_token"], body)
