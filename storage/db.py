"""Database access: async engine, serialised transactions, and alembic migrations."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

BUSY_TIMEOUT_MS = 30000  # how long a SQLite writer waits for another process's write lock
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# alembic's `context` proxy is process-global, so two migrations must never run at once.
_alembic_lock = threading.Lock()


def utcnow() -> datetime:
    """Return the current time as naive UTC (how every time is stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def alembic_config(url: str) -> Config:
    """Build an alembic Config for `url` pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on a '%' in a URL-encoded password.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@functools.cache
def head_revision() -> str | None:
    """The newest migration shipped with this code."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def upgrade_sync(url: str) -> None:
    """Migrate the database at `url` to the newest revision (blocking; not inside a running loop)."""
    ensure_sqlite_dir(url)
    with _alembic_lock:
        command.upgrade(alembic_config(url), "head")


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite file (the default lives under data/, absent on a new checkout)."""
    parsed = make_url(url)
    db_file = parsed.database
    if parsed.get_backend_name() == "sqlite" and db_file and db_file != ":memory:" and not db_file.startswith("file:"):
        Path(db_file).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin) instead of the driver's lazy BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", f"busy_timeout={BUSY_TIMEOUT_MS}", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class InlineSqlite(aiosqlite.Connection):
    """aiosqlite runs every call on the connection's own thread; the hop (a queue, a thread wake-up, a
    callback through the loop's self-pipe) costs several times what a SQLite statement does. Calls that
    cannot wait run inline on the loop instead: reads (WAL readers never wait for a writer), a deferred
    BEGIN (it takes no lock), rollback, and every statement of a write transaction begun IMMEDIATE (it
    already holds the one write lock). What can wait keeps the thread: BEGIN IMMEDIATE (it waits, up to
    busy_timeout, for another process's writer), the COMMIT of a write transaction (it syncs the
    write-ahead log to disk), PRAGMAs, and a write outside an IMMEDIATE transaction (it would have to take
    the lock)."""

    _immediate = False  # inside a transaction begun with BEGIN IMMEDIATE

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._running and self._connection is not None:
            if self._inline(fn, args):
                return fn(*args, **kwargs)
            if _is_begin_immediate(args) and self._try_begin_now(fn, args):
                return None
        result = await super()._execute(fn, *args, **kwargs)
        if args and isinstance(args[0], str) and args[0].lstrip()[:6].upper() != "PRAGMA":
            # BEGIN IMMEDIATE (a deferred BEGIN runs inline), or a write that took the lock: from here on the
            # transaction holds the write lock, and its commit syncs
            self._immediate = True
        elif getattr(fn, "__self__", None) is self._connection and fn.__name__ == "commit":
            self._immediate = False
        return result

    def _try_begin_now(self, fn: Any, args: tuple[Any, ...]) -> bool:
        """BEGIN IMMEDIATE on the loop when the write lock is free (nobody else waits: busy_timeout 0); False
        when another connection holds it, and the caller waits for it on the thread."""
        conn = self._connection
        assert conn is not None
        conn.execute("PRAGMA busy_timeout=0")
        try:
            fn(*args)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._immediate = True
        return True

    def _inline(self, fn: Any, args: tuple[Any, ...]) -> bool:
        if getattr(fn, "__self__", None) is self._connection:  # the connection's own methods
            if fn.__name__ == "rollback":
                self._immediate = False
                return True
            return fn.__name__ == "cursor" or (fn.__name__ == "commit" and not self._immediate)
        if not args or not isinstance(args[0], str):  # fetchone, fetchall, a cursor's close ...
            return True
        words = args[0].split(None, 2)
        verb = words[0].upper() if words else ""
        if verb == "BEGIN":
            return len(words) == 1 or words[1].upper() in ("DEFERRED", "TRANSACTION")
        return verb in ("SELECT", "WITH") or (self._immediate and verb != "PRAGMA")


def _is_begin_immediate(args: tuple[Any, ...]) -> bool:
    return bool(args) and isinstance(args[0], str) and args[0].split()[:2] == ["BEGIN", "IMMEDIATE"]


def _sqlite_creator(url: str) -> Any:
    """The `async_creator` of a SQLite engine: aiosqlite's connect with InlineSqlite (the sqlite3 connection is
    made on aiosqlite's thread and used from the loop's too, so never by two at once: SQLAlchemy awaits each
    call on a connection before the next)."""
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    (database,), params = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    params["check_same_thread"] = False

    def create() -> InlineSqlite:
        conn = InlineSqlite(lambda: sqlite3.connect(database, **params), 64)
        conn._thread.daemon = True
        return conn

    return create


def _sqlite_on_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so a transaction that reads then writes waits
    # (busy_timeout) for another process's writer instead of failing with SQLITE_BUSY mid-way.
    # A read-only transaction (Database.read) begins DEFERRED: WAL lets it read beside the writer.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("wuwei_read") else "BEGIN IMMEDIATE")


class WriteLock:
    """An asyncio lock, first come first served, except that an urgent waiter goes ahead of the others."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: tuple[collections.deque[asyncio.Future[None]], ...] = (collections.deque(), collections.deque())

    async def acquire(self, urgent: bool = False) -> None:
        if not self._held and not any(self._waiters):
            self._held = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters[0 if urgent else 1]
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # it was handed to us just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # (release may have dropped it already)
                    queue.remove(fut)
            raise

    def release(self) -> None:
        for queue in self._waiters:
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)  # handed over: it stays held
                    return
        self._held = False


# pg_advisory_xact_lock(int, int): a key space of our own (the test suite's session lock uses bigint keys)
CONVERSATION_LOCK_CLASS = 0x77770001


class Database:
    """An async engine plus session factory for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.engine: AsyncEngine
        if parsed.get_backend_name() == "sqlite":
            ensure_sqlite_dir(url)
            self.engine = create_async_engine(url, hide_parameters=True,  # no personal data in errors
                                              async_creator=_sqlite_creator(url))
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_on_begin)
        else:
            # no pool_pre_ping (a round trip on every checkout): after a database restart an event that meets a
            # dead pooled connection fails, is not acknowledged, and comes again on a fresh connection
            # a pool as large as the inbox's handlers plus the outbox, so taking an update on never waits for a
            # connection behind them
            self.engine = create_async_engine(url, pool_recycle=1800, hide_parameters=True, pool_size=10,
                                              max_overflow=20)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessionmaker = async_sessionmaker(self.engine.execution_options(wuwei_read=True),
                                                    expire_on_commit=False)
        # SQLite has a single writer: queue this process's writers here (first come, first served) rather
        # than let them poll in SQLite's busy handler. Reads (Database.read) never wait for it.
        self._write_lock = WriteLock() if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        """The backend name: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @contextlib.asynccontextmanager
    async def transaction(self, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """Yield a session in a transaction: commit on success, roll back on exception. Not reentrant. An
        `urgent` one (short, with callers waiting on it) goes ahead of the other writers queued in this process."""
        if self._write_lock is None:
            async with self.sessionmaker() as session, session.begin():
                yield session
            return
        await self._write_lock.acquire(urgent)
        try:
            async with self.sessionmaker() as session, session.begin():
                yield session
        finally:
            self._write_lock.release()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """Yield a session for reading only: it takes no write lock and waits for no writer."""
        async with self.read_sessionmaker() as session, session.begin():
            yield session

    async def lock_conversation(self, session: AsyncSession, key: str) -> None:
        """Hold one conversation exclusively until this transaction ends, across every worker. PostgreSQL:
        a transaction-scoped advisory lock (it cannot outlive its owner: a dead worker's connection ends
        its transaction). SQLite: the transaction already holds the database's one write lock."""
        if self.dialect == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:cls, hashtext(:key))"),
                                  {"cls": CONVERSATION_LOCK_CLASS, "key": key})
        else:
            await session.connection()  # emits the (lazy) BEGIN IMMEDIATE now, if nothing has yet

    async def upgrade(self) -> None:
        """Migrate this database to the newest revision (a look at alembic_version first: a database already
        there costs one query, not a run of alembic)."""
        if await self.revision() == head_revision():
            return
        # alembic's env.py calls asyncio.run, which cannot nest inside the running loop.
        await asyncio.to_thread(upgrade_sync, self.url)

    async def revision(self) -> str | None:
        """The migration this database is at (None: not migrated yet)."""
        try:
            async with self.engine.connect() as conn:
                return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
        except SQLAlchemyError:
            return None

    async def dispose(self) -> None:
        """Close all pooled connections."""
        await self.engine.dispose()
