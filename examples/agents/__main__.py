"""Launcher: ``python -m examples.agents <echo|transform|flaky|slow|all> [options]``.

Run it from the repository root. ``all`` serves the four agents in one process on consecutive
ports starting at ``--base-port`` (echo, transform, flaky, slow). Options that only concern
one agent (``--fail-first``, ``--delay``, ``--reply-as``, ...) are ignored by the others.
Defaults for some options come from the environment (see ``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from examples.agents import AGENT_KINDS
from examples.agents.common import DEFAULT_API_KEY_HEADER, AgentSettings, ExampleAgent, serve
from examples.agents.echo import EchoAgent
from examples.agents.flaky import FAIL_MODES, FlakyAgent
from examples.agents.slow import SlowAgent
from examples.agents.transform import TransformAgent

AGENT_CLASSES: dict[str, type[ExampleAgent]] = {
    "echo": EchoAgent,
    "transform": TransformAgent,
    "flaky": FlakyAgent,
    "slow": SlowAgent,
}
ENV_PREFIX = "EXAMPLE_AGENT_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.agents",
        description="Start sample A2A agents for flowledger (JSON-RPC over HTTP).",
    )
    parser.add_argument("agent", choices=[*AGENT_KINDS, "all"], help="which agent to start")
    parser.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="bind address")
    parser.add_argument("--port", type=int, default=None, help="port (single agent; def. 9101)")
    parser.add_argument(
        "--base-port", type=int, default=None, help="first port for 'all' (default 9101)"
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="URL advertised on the agent card (single agent; default http://HOST:PORT/)",
    )
    auth = parser.add_argument_group("auth (the agent card and /stats stay public)")
    auth.add_argument(
        "--require-bearer",
        metavar="TOKEN",
        default=_env("REQUIRE_BEARER"),
        help="answer 401 unless 'Authorization: Bearer TOKEN' is sent "
        "[env EXAMPLE_AGENT_REQUIRE_BEARER]",
    )
    auth.add_argument(
        "--require-api-key",
        metavar="KEY",
        default=_env("REQUIRE_API_KEY"),
        help="answer 401 unless the API key header is sent [env EXAMPLE_AGENT_REQUIRE_API_KEY]",
    )
    auth.add_argument(
        "--api-key-header",
        default=DEFAULT_API_KEY_HEADER,
        help=f"header carrying the API key (default {DEFAULT_API_KEY_HEADER})",
    )
    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument(
        "--no-streaming",
        action="store_true",
        help="do not advertise or allow streaming (clients must poll for the task)",
    )
    behaviour.add_argument(
        "--fail-first",
        type=_non_negative_int,
        default=_non_negative_int(_env("FAIL_FIRST", "0") or "0"),
        help="flaky: fail the first N calls (default 0) [env EXAMPLE_AGENT_FAIL_FIRST]",
    )
    behaviour.add_argument(
        "--fail-mode",
        choices=FAIL_MODES,
        default=_env("FAIL_MODE", "task"),
        help="flaky: 'task' = failed task (default), 'error' = JSON-RPC internal error",
    )
    behaviour.add_argument(
        "--report-calls",
        action="store_true",
        help='flaky: add "calls": n to the reply object',
    )
    behaviour.add_argument(
        "--delay",
        type=_non_negative_float,
        default=_non_negative_float(_env("DELAY_S", "5") or "5"),
        help="slow: seconds to wait before replying (default 5) [env EXAMPLE_AGENT_DELAY_S]",
    )
    behaviour.add_argument(
        "--reply-as",
        choices=("message", "task"),
        default="message",
        help="echo: reply with a direct Message (default) or a Task with an artifact",
    )
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "warning"),
        choices=("critical", "error", "warning", "info", "debug"),
    )
    return parser


def agents_from_args(args: argparse.Namespace) -> list[ExampleAgent]:
    base = AgentSettings(
        kind="",
        host=args.host,
        require_bearer=args.require_bearer or None,
        require_api_key=args.require_api_key or None,
        api_key_header=args.api_key_header,
        streaming=not args.no_streaming,
        fail_first=args.fail_first,
        fail_mode=args.fail_mode,
        delay_s=args.delay,
        reply_as=args.reply_as,
        report_calls=args.report_calls,
        log_level=args.log_level,
    )
    if args.agent == "all":
        first = args.base_port if args.base_port is not None else (args.port or 9101)
        return [
            AGENT_CLASSES[kind](replace(base, kind=kind, port=first + offset))
            for offset, kind in enumerate(AGENT_KINDS)
        ]
    port = args.port if args.port is not None else (args.base_port or 9101)
    settings = replace(base, kind=args.agent, port=port, public_url=args.public_url)
    return [AGENT_CLASSES[args.agent](settings)]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    agents = agents_from_args(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(agents))
    return 0


if __name__ == "__main__":
    sys.exit(main())
