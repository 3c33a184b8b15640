"""Two worker processes' worth of bot on one database: every message delivered once, one claimer."""
from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from sqlalchemy import event

from bot.clock import Clock
from storage.models import Claim, Team
from tests.conftest import Backend
from tests.simclient import CROWD, MONDAY_10AM_UTC, Sim, add_crowd, count_rows, demo_config


async def test_two_workers_share_the_work_without_doubling(backend: Backend) -> None:
    cfg = demo_config(backend.database_url, backend.redis_url)
    clock = Clock(frozen_at=MONDAY_10AM_UTC)
    a = await Sim(cfg, clock, redis_prefix=backend.redis_prefix).start()
    b = await Sim(cfg, clock, redis_prefix=backend.redis_prefix).start()
    try:
        numbers = await asyncio.gather(*(
            (a if i % 2 else b).ask_for_help(f"r-w{i}", "为老服务", "送餐助餐", "幸福社区") for i in range(6)))
        assert len(set(numbers)) == 6
        await asyncio.gather(a.app.outbox.flush(), b.app.outbox.flush())  # type: ignore[union-attr]
        cards = await a.bot_texts("grp-xingfu-elderly")
        for n in numbers:
            assert sum(n in c for c in cards) == 1, (n, cards)  # posted once, whichever worker sent it
        # presses on the same card arrive at both workers at once: one winner
        message_id, data = await a.find_button("grp-xingfu-elderly", "接单", contains=numbers[0])
        answers = await asyncio.gather(a.press_data("grp-xingfu-elderly", "v-liming", message_id, data),
                                       b.press_data("grp-xingfu-elderly", "v-zhangwei", message_id, data))
        assert sum("接单成功" in (x or "") for x in answers) == 1, answers
        for resident in (f"r-w{i}" for i in range(6)):
            texts = await b.bot_texts(resident)
            assert sum("已提交" in t for t in texts) == 1
    finally:
        await a.close()
        await b.close()


async def test_fifty_presses_on_two_workers_one_winner_two_writes_at_most(backend: Backend) -> None:
    """50 volunteers press 接单 on one card at once, half through each worker: one winner, 49 told it is
    taken, and in each worker only the first press runs the claim's conditional write (the others wait for
    it and are answered from a read). The two workers' first presses race in the database for real
    (PostgreSQL: concurrent transactions; SQLite: two connections and its one write lock)."""
    cfg = demo_config(backend.database_url, backend.redis_url, add_crowd)
    clock = Clock(frozen_at=MONDAY_10AM_UTC)
    a = await Sim(cfg, clock, redis_prefix=backend.redis_prefix).start()
    b = await Sim(cfg, clock, redis_prefix=backend.redis_prefix).start()
    writes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("UPDATE requests") and "requests.status IN" in statement:
            writes.append(statement)  # a conditional transition (the claim)

    try:
        number = await a.ask_for_help("r-burst", "为老服务", "陪同就医", "幸福社区")
        message_id, data = await a.find_button("grp-xingfu-elderly", "接单", contains=number)
        for sim in (a, b):
            event.listen(sim.app.db.engine.sync_engine, "before_cursor_execute", count)  # type: ignore[union-attr]
        answers = await asyncio.gather(*((a if i % 2 else b).press_data("grp-xingfu-elderly", v, message_id, data)
                                         for i, v in enumerate(CROWD)))
        assert sum("接单成功" in (x or "") for x in answers) == 1, answers
        assert sum("已经有人接了" in (x or "") for x in answers) == 49, answers
        assert await count_rows(backend.database_url, Claim) == 1
        assert 1 <= len(writes) <= 2, writes
    finally:
        await a.close()
        await b.close()


async def test_two_workers_starting_at_once_on_a_new_database(backend: Backend) -> None:
    """A first deploy starts every worker at the same moment: each seeds the empty database from config, and
    none may die of the other's rows (on PostgreSQL both used to insert the teams: UniqueViolation)."""
    cfg = demo_config(backend.database_url, backend.redis_url)
    clock = Clock(frozen_at=MONDAY_10AM_UTC)
    sims = [Sim(cfg, clock, redis_prefix=backend.redis_prefix) for _ in range(3)]
    try:
        started = await asyncio.gather(*(s.start() for s in sims), return_exceptions=True)
        assert [r for r in started if isinstance(r, BaseException)] == []
        assert await count_rows(backend.database_url, Team) == len(cfg.teams)
        number = await sims[1].ask_for_help("r-first", "为老服务", "送餐助餐", "幸福社区")
        assert number in await sims[2].last("grp-xingfu-elderly")
    finally:
        for s in sims:
            await s.close()


@pytest.mark.empty_db
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # several worker processes need PostgreSQL
async def test_workers_migrating_at_once(backend: Backend) -> None:
    """`wuwei run` migrates first: worker processes started together on a new PostgreSQL database take turns
    (each would otherwise create the same tables, and all but one would die of a duplicate type or table)."""
    code = "import sys; from storage.db import upgrade_sync; upgrade_sync(sys.argv[1])"
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", code, backend.database_url,
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
             for _ in range(3)]
    outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
    failed = [out.decode(errors="replace")[-400:] for p, (out, _) in zip(procs, outs, strict=True) if p.returncode]
    assert failed == []
    assert await count_rows(backend.database_url, Team) == 0  # the schema is there (and empty)
