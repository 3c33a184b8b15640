"""Shared fixtures: every storage-backed test runs on SQLite and on PostgreSQL + Redis."""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

if TYPE_CHECKING:
    from tests.fakes.wecom_bot import WecomBot
    from tests.simclient import Sim
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from tests.simclient import delete_redis_keys

PG_URL = os.environ.get("WUWEI_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WUWEI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHECK_TIMEOUT = 2.0
# Serialises tests of concurrent pytest runs that share the one test database (schema is reset).
PG_TEST_LOCK_ID = 0x77757765  # "wuwe"

_verdict: list[str | None] = []  # cached _check_services() result; empty until checked


@dataclass
class Backend:
    """Where a test's database (and, for postgres, Redis) lives."""

    name: str
    database_url: str
    redis_url: str | None
    redis_prefix: str = "wuwei:lock:"


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _check_services() -> str | None:
    """Return which of PostgreSQL/Redis is unusable, or None; checked once per session."""
    if _verdict:
        return _verdict[0]
    problems = []
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=CHECK_TIMEOUT)
        await conn.close()
    except Exception as exc:  # any failure (refused, timeout, auth, no such db) = unusable
        problems.append(f"PostgreSQL ({type(exc).__name__})")
    client = aioredis.Redis.from_url(
        REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
    )
    try:
        await client.ping()
    except Exception as exc:
        problems.append(f"Redis ({type(exc).__name__})")
    finally:
        await client.aclose()
    _verdict.append(", ".join(problems) or None)
    return _verdict[0]


def _require(failed: str) -> None:
    where = f"{make_url(PG_URL).render_as_string()} and {REDIS_URL}"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"PostgreSQL/Redis not reachable at {where} (failed: {failed}); CI requires them")
    pytest.skip(
        f"PostgreSQL/Redis not reachable at {where} (failed: {failed}): start them "
        "(see README 'Tests') or run with CI=true to require them"
    )


def _head() -> str:
    """The newest migration (what App.start migrates to)."""
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config

    if not _heads:
        _heads.append(ScriptDirectory.from_config(alembic_config(PG_URL)).get_current_head() or "")
    return _heads[0]


_heads: list[str] = []


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session: each test starts from a copy (migrating a new file
    for every test would cost a second or more each)."""
    from storage.db import upgrade_sync

    path = tmp_path_factory.mktemp("template") / "wuwei.db"
    with ThreadPoolExecutor(1) as pool:  # alembic runs its own event loop: not inside the test's
        pool.submit(upgrade_sync, f"sqlite+aiosqlite:///{path}").result()
    return path


async def _reset_postgres(conn: asyncpg.Connection, empty: bool) -> None:
    """An empty database: the schema at head with every table emptied (fast), or with `empty` no schema at all
    (for the tests of migrating itself). Whatever schema a previous test left that is not at head is dropped."""
    version = None
    if not empty:
        try:
            version = await conn.fetchval("SELECT version_num FROM alembic_version")
        except asyncpg.UndefinedTableError:
            version = None
    if version is not None and version == _head():
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
        await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
        return
    await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """An empty database on each backend: migrated to head with no rows, or — for a test marked `empty_db`
    (the tests of migrating) — with no schema at all."""
    empty = request.node.get_closest_marker("empty_db") is not None
    if request.param == "sqlite":
        if not empty:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "wuwei.db")
        yield Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path}/wuwei.db", None)
        return
    failed = await _check_services()
    if failed:
        _require(failed)
    conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=CHECK_TIMEOUT)
    prefix = f"wuwei-test:{uuid.uuid4().hex}:"
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", PG_TEST_LOCK_ID)
        await _reset_postgres(conn, empty)
        yield Backend("postgres", PG_URL, REDIS_URL, prefix)
    finally:
        await delete_redis_keys(REDIS_URL, prefix)
        await conn.close()  # also releases the advisory lock


@pytest.fixture
async def sim(backend: Backend) -> AsyncIterator[Sim]:
    """A running bot on this backend, driven through the simulator API, with a frozen clock."""
    from bot.clock import Clock
    from tests.simclient import MONDAY_10AM_UTC, Sim, demo_config  # noqa: F811  (runtime import)

    cfg = demo_config(backend.database_url, backend.redis_url)
    s = Sim(cfg, Clock(frozen_at=MONDAY_10AM_UTC), redis_prefix=backend.redis_prefix)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def bot(backend: Backend) -> AsyncIterator[WecomBot]:
    """The bot on WeCom (the fake corp API and kf); after each test the fake must have refused and dropped
    nothing. Test modules that expect refusals define their own `bot`."""
    from tests.fakes.wecom_bot import WecomBot  # noqa: F811  (runtime import)

    b = await WecomBot.create(backend.database_url, backend.redis_url, backend.redis_prefix)
    try:
        yield b
        assert b.fake.violations == [] and b.fake.dropped == []
    finally:
        await b.close()
