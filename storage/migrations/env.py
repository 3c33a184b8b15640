"""Alembic environment: runs migrations on an async engine for the configured URL."""
import asyncio
from typing import Any

from alembic import context
from sqlalchemy import event, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import Base

config = context.config
# pg_advisory_xact_lock(int, int) key of a migration run (bot.seed.SYNC_LOCK is (0x77770002, 1))
MIGRATE_LOCK = (0x77770002, 2)
target_metadata = Base.metadata


def _url() -> str:
    # storage.db sets sqlalchemy.url; `-x url=...` serves ad-hoc CLI use (alembic -c storage/alembic.ini).
    url = config.get_main_option("sqlalchemy.url") or context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url or pass -x url=...")
    return url


def _configure(**kwargs: Any) -> None:
    url = _url()
    context.configure(
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Emit the migration SQL without connecting."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on one synchronous connection."""
    _configure(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # worker processes started together on a new database migrate one after the other: the DDL is
            # transactional, so the next one, once it has the lock, finds the newest revision and does nothing
            connection.execute(text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": MIGRATE_LOCK[0],
                                                                                 "key": MIGRATE_LOCK[1]})
        context.run_migrations()


async def run_async_migrations() -> None:
    """Connect with the async driver and run the migrations."""
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        # Wait for a running app's writer instead of failing at once with "database is locked".
        event.listen(engine.sync_engine, "connect", _sqlite_busy_timeout)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def _sqlite_busy_timeout(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
