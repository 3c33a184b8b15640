"""The `wuwei` command: run, check-config, db upgrade."""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from bot.config import Config, ConfigError, load_config, redact_url


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"config error in {path}:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _run(cfg: Config) -> None:
    from bot.app import App

    app = App(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    # what start-up made lives as long as the process: out of the collector's sight, so a full collection under
    # load (thousands of updates in flight) does not walk every module, table and catalog again (it made the
    # slowest webhook answers 3x slower: bench.webhook's p99)
    gc.collect()
    gc.freeze()
    print(f"wuwei is running: open http://{cfg.http.host}:{app.port}/ (Ctrl+C stops it)", flush=True)
    try:
        await stop.wait()
    finally:
        await app.stop()


async def _linkcode(cfg: Config, who: str) -> str | None:
    """Issue a link code from the command line (for the first coordinator, before anyone is linked)."""
    from datetime import timedelta

    from bot.clock import Clock
    from bot.seed import sync_config
    from storage import channel_repo
    from storage.db import Database

    db = Database(cfg.storage.database_url)
    try:
        await db.upgrade()
        now = Clock().now()
        await sync_config(db, cfg, now)
        async with db.transaction() as s:
            person = await channel_repo.find_staff(s, who)
            if person is None:
                return None
            return await channel_repo.issue_link_code(s, person.id, "cli", now, timedelta(days=7))
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and `python -m bot`."""
    parser = argparse.ArgumentParser(prog="wuwei", description="五为 volunteer service bot")
    parser.add_argument("--config", default="config.yaml", help="path to config.yaml (default ./config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the bot (migrates the database first)")
    sub.add_parser("check-config", help="validate the config file and exit")
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"], help="upgrade: apply migrations")
    link = sub.add_parser("linkcode", help="print a one-time /link code for a volunteer or coordinator")
    link.add_argument("person", help="the person's id or name in config (e.g. c-zhao)")
    for p in sub.choices.values():
        p.add_argument("--config", default=argparse.SUPPRESS, help="path to config.yaml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    cfg = _load(args.config)
    if args.command == "check-config":
        from bot.config_checks import config_warnings

        for warning in config_warnings(cfg):
            print(f"warning: {warning}")
        print(f"{args.config}: OK ({len(cfg.teams)} teams, {len(cfg.stations())} stations, "
              f"{len(cfg.people.volunteers)} volunteers, {len(cfg.people.coordinators)} coordinators)")
        return 0
    if args.command == "db":
        from storage.db import upgrade_sync

        upgrade_sync(cfg.storage.database_url)
        print(f"database {redact_url(cfg.storage.database_url)} is up to date")
        return 0
    if args.command == "linkcode":
        code = asyncio.run(_linkcode(cfg, args.person))
        if code is None:
            print(f"no volunteer or coordinator {args.person!r} in {args.config}", file=sys.stderr)
            return 2
        print(f"link code for {args.person}: {code} — they send `/link {code}` to the bot in a private chat "
              "(valid 7 days, once)")
        return 0
    try:
        asyncio.run(_run(cfg))
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
