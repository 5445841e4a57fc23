"""The `pishkhan` command: serve, migrate, agent add/token, faq import/export, bench."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import runpy
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bots import knowledge
from inbox.accounts import AccountError, create_agent, create_api_token
from inbox.config import Config, ConfigError, load_config
from inbox.runtime import ROLES, Runtime, ensure_first_admin
from storage.db import create_engine, session_factory
from storage.migrate import upgrade

DEFAULT_CONFIG = "config.yaml"


def _config(args: argparse.Namespace) -> Config:
    path = Path(args.config)
    if not path.exists() and args.config == DEFAULT_CONFIG:
        return Config()
    return load_config(path)


async def _serve(config: Config, roles: Sequence[str]) -> None:
    runtime = Runtime(config, roles=roles)
    await runtime.start()
    # Everything built at start (modules, config, the FAQ index, caches) lives as long as the
    # process: moved out of the collector's sight, a full collection no longer walks it, and
    # the pauses those walks cost every request in flight (tens of ms) are gone.
    gc.freeze()
    assert runtime.services is not None
    first = await ensure_first_admin(
        runtime.services.sessions, capacity=config.routing.default_capacity
    )
    if first is not None:
        print(
            f"First start: created admin {first[0]} with password {first[1]}\n"
            "Log in with it and change it; it is not shown again.",
            flush=True,
        )
    print(f"Pishkhan is serving on {runtime.site_url} (roles: {', '.join(roles)})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runtime.stop()


async def _migrate(config: Config) -> None:
    engine = create_engine(config.storage)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _agent_add(config: Config, args: argparse.Namespace) -> None:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        generated = False
    else:
        password, generated = secrets.token_urlsafe(12), True
    engine = create_engine(config.storage)
    try:
        await upgrade(engine)
        async with session_factory(engine).begin() as session:
            agent = await create_agent(
                session,
                email=args.email,
                name=args.name or "",
                password=password,
                role=args.role,
                capacity=args.capacity or config.routing.default_capacity,
            )
    finally:
        await engine.dispose()
    print(f"Added {agent.role} {agent.email} (id {agent.id})")
    if generated:
        print(f"Password: {password}")


async def _agent_token(config: Config, args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from storage.models import Agent

    engine = create_engine(config.storage)
    try:
        async with session_factory(engine).begin() as session:
            agent_id = await session.scalar(select(Agent.id).where(Agent.email == args.email))
            if agent_id is None:
                raise AccountError(f"no agent with email {args.email}")
            token = await create_api_token(session, agent_id, args.name)
    finally:
        await engine.dispose()
    print(token)


async def _faq_import(config: Config, text: str, replace: bool) -> knowledge.ImportResult:
    engine = create_engine(config.storage)
    try:
        await upgrade(engine)
        async with session_factory(engine).begin() as session:
            return await session.run_sync(knowledge.import_yaml, text, replace=replace)
    finally:
        await engine.dispose()


async def _faq_export(config: Config) -> str:
    engine = create_engine(config.storage)
    try:
        await upgrade(engine)
        async with session_factory(engine).begin() as session:
            return await session.run_sync(knowledge.export_yaml)
    finally:
        await engine.dispose()


def _faq(config: Config, args: argparse.Namespace) -> int:
    """`faq import FILE [--replace]` / `faq export [FILE]`; 2 and a message on bad input."""
    if args.faq_command == "import":
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
            return 2
        try:
            result = asyncio.run(_faq_import(config, text, args.replace))
        except knowledge.KnowledgeError as exc:
            print(f"error: {args.file} was not imported (nothing changed):", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
        print(
            f"Imported {args.file}: {result.created} created, {result.updated} updated, "
            f"{result.deleted} deleted."
        )
        return 0
    text = asyncio.run(_faq_export(config))
    if args.file in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text, encoding="utf-8")
        print(f"Exported the knowledge base to {args.file}.", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pishkhan", description=__doc__)
    parser.add_argument(
        "--config",
        default=os.environ.get("PISHKHAN_CONFIG", DEFAULT_CONFIG),
        help="path to config.yaml (default: ./config.yaml)",
    )
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run Pishkhan (migrates first)")
    serve.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        help="run only these parts (repeatable; default: all)",
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    commands.add_parser("migrate", help="apply database migrations")
    agent = commands.add_parser("agent", help="manage agents").add_subparsers(
        dest="agent_command", required=True
    )
    add = agent.add_parser("add", help="add an agent (password generated, or from stdin)")
    add.add_argument("email")
    add.add_argument("--name")
    add.add_argument("--role", choices=("admin", "agent"), default="agent")
    add.add_argument("--capacity", type=int, help="default: routing.default_capacity")
    add.add_argument("--password-stdin", action="store_true")
    token = agent.add_parser("token", help="create an API bearer token for an agent")
    token.add_argument("email")
    token.add_argument("--name", default="cli")
    faq = commands.add_parser("faq", help="the FAQ bot's knowledge base").add_subparsers(
        dest="faq_command", required=True
    )
    faq_import = faq.add_parser("import", help="create/update entries from a YAML file")
    faq_import.add_argument("file")
    faq_import.add_argument(
        "--replace", action="store_true", help="also delete entries the file does not list"
    )
    faq_export = faq.add_parser("export", help="write every entry as YAML (default: stdout)")
    faq_export.add_argument("file", nargs="?")
    commands.add_parser("bench", help="run the benchmarks and print a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = _config(args)
        if args.command == "serve":
            overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
            if overrides:
                config = config.model_copy(
                    update={"server": config.server.model_copy(update=overrides)}
                )
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_serve(config, args.role or ROLES))
        elif args.command == "migrate":
            asyncio.run(_migrate(config))
            print("Database is up to date.")
        elif args.command == "agent" and args.agent_command == "add":
            asyncio.run(_agent_add(config, args))
        elif args.command == "agent" and args.agent_command == "token":
            asyncio.run(_agent_token(config, args))
        elif args.command == "faq":
            return _faq(config, args)
        elif args.command == "bench":
            sys.path.insert(0, os.getcwd())
            runpy.run_module("bench", run_name="__main__")
    except ConfigError as exc:
        print(f"config error in {args.config}:\n{exc}", file=sys.stderr)
        return 2
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
