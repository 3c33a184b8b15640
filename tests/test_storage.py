"""Contract tests of the storage layer, on SQLite and on PostgreSQL + Redis."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text, update

from storage.db import Database, alembic_config, utcnow
from storage.locks import LocalLocks
from storage.models import Base, HelpRequest, Person, Team

from .conftest import Backend


@pytest.fixture
async def db(backend: Backend) -> AsyncIterator[Database]:
    """A migrated database on the backend."""
    database = Database(backend.database_url)
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
async def two_workers(backend: Backend) -> AsyncIterator[tuple[Database, Database]]:
    """Two engines on one migrated database, as two worker processes have."""
    first, second = Database(backend.database_url), Database(backend.database_url)
    await first.upgrade()
    yield first, second
    await first.dispose()
    await second.dispose()


@contextlib.asynccontextmanager
async def conversation(db: Database, key: str) -> AsyncIterator[None]:
    """Hold a conversation as the dispatcher does: inside a transaction, until it ends."""
    async with db.transaction() as s:
        await db.lock_conversation(s, key)
        yield


def _schema_diffs(sync_conn) -> list:  # type: ignore[no-untyped-def]
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return compare_metadata(ctx, Base.metadata)


async def _current_revision(database: Database) -> str | None:
    async with database.engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


@pytest.mark.empty_db
async def test_upgrade_creates_schema_matching_models(backend: Backend) -> None:
    database = Database(backend.database_url)
    try:
        assert database.dialect == {"sqlite": "sqlite", "postgres": "postgresql"}[backend.name]
        assert await _current_revision(database) is None
        await database.upgrade()
        head = ScriptDirectory.from_config(alembic_config(backend.database_url)).get_current_head()
        assert await _current_revision(database) == head
        async with database.engine.connect() as conn:
            assert await conn.run_sync(_schema_diffs) == []
    finally:
        await database.dispose()


async def test_upgrade_twice_is_a_noop(db: Database) -> None:
    async with db.transaction() as session:
        session.add(Person(id="p1", name="A", created_at=utcnow()))
    before = await _current_revision(db)
    await db.upgrade()
    assert await _current_revision(db) == before
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Person)) == 1


async def test_failed_transaction_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as session:
            session.add(Person(id="p1", name="A", created_at=utcnow()))
            await session.flush()
            raise RuntimeError("boom")
    # The next transaction runs (the SQLite writer lock was released) and sees nothing.
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Person)) == 0


async def test_foreign_keys_enforced(db: Database) -> None:
    with pytest.raises(Exception, match="(?i)foreign key"):
        async with db.transaction() as session:
            await session.execute(
                text("INSERT INTO team_members (team_id, person_id) VALUES ('nope', 'nobody')")
            )


def test_utcnow_is_naive() -> None:
    assert utcnow().tzinfo is None


async def test_concurrent_conditional_update_has_one_winner(db: Database) -> None:
    now = utcnow()
    async with db.transaction() as session:
        session.add(Team(id="t1", name="Team", unit="u1", level="community"))
        session.add(Person(id="r1", name="Resident", is_resident=True, created_at=now))
        session.add_all(
            Person(id=f"v{i}", name=f"V{i}", is_volunteer=True, created_at=now) for i in range(20)
        )
        await session.flush()
        request = HelpRequest(
            number="20250101-001", resident_id="r1", channel="sim", chat_id="c1", category="care",
            service="visit", station_id="s1", for_whom="self", when_kind="now", when_text="now",
            address="addr", phone="000", description="desc", status="open", team_id="t1",
            created_at=now,
        )
        session.add(request)
        await session.flush()
        request_id = request.id

    gate = asyncio.Barrier(20)

    async def claim(volunteer: str) -> int:
        await gate.wait()
        async with db.transaction() as session:
            result = await session.execute(
                update(HelpRequest)
                .where(HelpRequest.id == request_id, HelpRequest.status == "open")
                .values(status="claimed", volunteer_id=volunteer, claimed_at=utcnow())
            )
            return result.rowcount

    counts = await asyncio.wait_for(asyncio.gather(*(claim(f"v{i}") for i in range(20))), 60)
    assert sorted(counts) == [0] * 19 + [1]
    winner = f"v{counts.index(1)}"
    async with db.transaction() as session:
        row = await session.get(HelpRequest, request_id)
        assert row is not None
        assert (row.status, row.volunteer_id) == ("claimed", winner)


async def test_conversation_lock_serialises_workers(two_workers: tuple[Database, Database]) -> None:
    events: list[str] = []
    a_holding, release_a = asyncio.Event(), asyncio.Event()
    first, second = two_workers

    async def a() -> None:
        async with conversation(first, "simulator:u1:u1"):
            events.append("a in")
            a_holding.set()
            await release_a.wait()
            events.append("a out")

    async def b() -> None:
        await a_holding.wait()
        events.append("b wants")
        async with conversation(second, "simulator:u1:u1"):
            events.append("b in")

    tasks = asyncio.gather(a(), b())
    await asyncio.wait_for(a_holding.wait(), 10)
    # Give b ample chances to (wrongly) get in; the assertion is on order, not on time.
    await asyncio.sleep(0.3)
    events.append("release a")
    release_a.set()
    await asyncio.wait_for(tasks, 20)
    assert events == ["a in", "b wants", "release a", "a out", "b in"]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # SQLite has one writer for every key
async def test_conversation_lock_leaves_other_conversations_alone(two_workers: tuple[Database, Database]) -> None:
    first, second = two_workers
    async with conversation(first, "simulator:u1:u1"):
        async with asyncio.timeout(10), conversation(second, "simulator:u2:u2"):
            pass


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_conversation_lock_dies_with_its_worker(two_workers: tuple[Database, Database]) -> None:
    """A worker killed while holding a conversation: its connection ends, and so does the lock."""
    first, second = two_workers
    session = first.sessionmaker()
    await session.begin()
    await first.lock_conversation(session, "simulator:u1:u1")
    pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    async with second.transaction() as killer:
        await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    async with asyncio.timeout(10), conversation(second, "simulator:u1:u1"):
        pass
    with contextlib.suppress(Exception):  # the dead worker's session cannot even roll back
        await session.close()


async def test_local_locks_forget_idle_keys() -> None:
    locks = LocalLocks()
    async with locks.lock("k"):
        assert "k" in locks._entries
    with pytest.raises(RuntimeError):
        async with locks.lock("k2"):
            raise RuntimeError
    assert locks._entries == {}


async def test_dedupe_marks_once_and_prunes_old_ids(db: Database) -> None:
    from datetime import timedelta

    from storage import repo

    now = utcnow()
    async with db.transaction() as s:
        assert await repo.mark_processed(s, "simulator", "e1", now - timedelta(days=8))
        assert await repo.mark_processed(s, "simulator", "e2", now)
    async with db.transaction() as s:
        assert not await repo.mark_processed(s, "simulator", "e2", now)
        assert await repo.mark_processed(s, "telegram", "e2", now)  # ids are per channel
        assert await repo.prune_processed(s, now - timedelta(days=7)) == 1
    async with db.transaction() as s:
        assert await repo.mark_processed(s, "simulator", "e1", now)  # forgotten, so new again


async def test_sqlite_a_writer_waiting_for_another_connection_leaves_the_loop_free(tmp_path: object) -> None:
    """SQLite statements run inline on the loop, but a BEGIN IMMEDIATE that finds the write lock taken (here by
    a second engine on the same file, as another worker would hold it) waits on aiosqlite's thread: the
    holder, on this same loop, goes on and commits, then the waiter writes. (Waiting inline would freeze the
    loop until busy_timeout.)"""
    url = f"sqlite+aiosqlite:///{tmp_path}/two.db"
    a, b = Database(url), Database(url)
    try:
        await a.upgrade()
        order: list[str] = []

        async def second() -> None:
            async with b.transaction() as s:
                await s.execute(text("INSERT INTO counters (name, value) VALUES ('b', 1)"))
                order.append("b")

        async with a.transaction() as s:
            await s.execute(text("INSERT INTO counters (name, value) VALUES ('a', 1)"))
            waiter = asyncio.create_task(second())
            await asyncio.sleep(0.3)  # the loop is free while b waits for the lock
            order.append("a")
        await asyncio.wait_for(waiter, 10)
        assert order == ["a", "b"]
        async with b.read() as s:
            assert (await s.execute(text("SELECT count(*) FROM counters"))).scalar_one() == 2
    finally:
        await a.dispose()
        await b.dispose()
