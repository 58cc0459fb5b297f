"""``flowledger users create``: a user, made from the command line (the first admin, for one),
without the API running. The password comes from standard input (``--password-stdin``) or is
made up and printed once."""

from __future__ import annotations

import argparse
import sys

from flowledger.domain.access import ROLES, Role
from flowledger.domain.errors import DomainError, InvalidInput
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from flowledger.security.first_admin import create_user

CLI_ACTOR = "system:cli"


def add_users_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser("users", help="manage users from the command line")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="create a user (with --admin: an admin, e.g. the first one)"
    )
    create.add_argument("--email", required=True, help="what the user signs in with")
    create.add_argument("--name", help="how the user is shown (default: the email)")
    role = create.add_mutually_exclusive_group()
    role.add_argument("--admin", action="store_true", help="role admin")
    role.add_argument("--role", choices=ROLES, default=None, help="the user's role")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (default: make one up and print it once)",
    )


def run_users(settings: Settings, args: argparse.Namespace) -> int:
    role = Role.ADMIN if args.admin else Role(args.role or Role.VIEWER)
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    runtime = Runtime.open(settings)
    try:
        made = create_user(
            runtime,
            email=args.email,
            name=args.name or args.email,
            role=role,
            password=password,
            actor=CLI_ACTOR,
        )
    except InvalidInput as error:
        for problem in error.problems:
            print(f"flowledger: {problem.field} {problem.message}", file=sys.stderr)
        return 1
    except DomainError as error:
        print(f"flowledger: {error.detail}", file=sys.stderr)
        return 1
    finally:
        runtime.close_sync()
    user = made.user
    print(f"created user {user.id} {user.email} ({user.role})")
    if made.generated:
        print(f"password {made.password}  (shown once: sign in with it, then change it)")
    return 0
