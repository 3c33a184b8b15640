"""The road every event takes: one conversation key, ordering, failures not acknowledged, bounded retries,
Redis not needed to handle events. On SQLite and on PostgreSQL + Redis."""
from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select, text

from bot.clock import Clock
from bot.dispatcher import MAX_TRIES
from handlers import effects, ops
from handlers.context import Ctx
from handlers.events import InboundEvent
from storage import repo
from storage.db import Database
from storage.models import HelpRequest, Rating
from tests.conftest import Backend
from tests.fakes.telegram_sim import bots
from tests.simclient import MONDAY_10AM_UTC, Sim, demo_config


@asynccontextmanager
async def table_away(url: str, table: str) -> AsyncIterator[None]:
    """Fault injection from outside the bot: a table it needs is gone (as with a broken disk or a bad
    migration), then comes back."""
    db = Database(url)
    async with db.transaction() as s:
        await s.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        async with db.transaction() as s:
            await s.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))
        await db.dispose()


async def send_until_accepted(sim: Sim, chat: str, text_: str, event_id: str, tries: int = 5) -> dict:
    """What a platform (or the simulator page) does: deliver again until the bot accepts it."""
    assert sim.http is not None
    for _ in range(tries):
        async with sim.http.post(sim.base + "/sim/api/send", json={"chat_id": chat, "user_id": chat,
                                                                   "text": text_, "event_id": event_id}) as r:
            if r.status == 200:
                return dict(await r.json())
            assert r.status == 503, r.status
    raise AssertionError("never accepted")


async def test_a_typed_rating_counts(sim: Sim) -> None:
    """The rating state is kept under the resident's own conversation, so typing 5 rates the service."""
    await sim.ask_for_help("r-typed", "为老服务", "送餐助餐", "幸福社区")
    await sim.press("grp-xingfu-elderly", "v-liming", "接单")
    await sim.press("v-liming", "v-liming", "完成服务")
    assert "打分" in await sim.last("r-typed")
    await sim.say("r-typed", "5")
    assert "谢谢" in await sim.last("r-typed")
    assert "已提交" not in await sim.last("r-typed")  # not a new help form
    assert sim.app is not None
    async with sim.app.db.transaction() as s:
        stars = (await s.execute(select(Rating.stars))).scalars().all()
    assert stars == [5]


async def test_a_burst_from_one_person_is_handled_in_order(sim: Sim) -> None:
    """Three answers typed in quick succession: each step sees the state the one before it left."""
    resident = "r-burst"
    await sim.say(resident, "你好")
    await sim.accept_privacy(resident)
    for label in ("为老服务", "陪同就医", "幸福社区", "家里人", "选日期"):
        await sim.press(resident, resident, label)
    await sim.say(resident, "明天上午9点")
    assert sim.app is not None
    answers = ["幸福路12号3单元401", "13812345678", "老人腿脚不便，需要陪同去医院复查"]
    events = [InboundEvent(channel="simulator", event_id=f"burst-{i}", chat_id=resident, user_id=resident,
                           text=answer) for i, answer in enumerate(answers)]
    results = await asyncio.gather(*(sim.app.dispatcher.handle(ev) for ev in events))
    assert not any(r.failed or r.duplicate for r in results)
    await sim.app.settle(sum((r.outbox_ids for r in results), []))  # the replies of all three, in their order
    summary = await sim.last(resident)
    for shown in (answers[0], "138****5678", answers[2]):  # the phone is shown masked
        assert shown in summary, (await sim.bot_texts(resident))[-4:]
    assert "确认提交" in str((await sim.messages(resident))[-1]["buttons"])


async def test_a_failed_event_is_not_acknowledged_and_comes_again(sim: Sim, backend: Backend) -> None:
    """The database fails while a message is handled: the caller gets a 503 and nothing is kept; the same
    event delivered again after recovery is handled exactly once."""
    resident = "r-fail"
    await sim.say(resident, "你好")
    await sim.accept_privacy(resident)
    await sim.press(resident, resident, "为老服务")
    async with table_away(backend.database_url, "conversation_states"):
        before = len(await sim.messages(resident))
        await sim.post("/sim/api/send", {"chat_id": resident, "user_id": resident, "text": "1",
                                         "event_id": "evt-1"}, expect=503)
        assert len(await sim.messages(resident)) == before  # nothing shown, nothing answered
    answer = await send_until_accepted(sim, resident, "1", "evt-1")
    assert answer["duplicate"] is False
    again = await send_until_accepted(sim, resident, "1", "evt-1")
    assert again["duplicate"] is True
    typed = [m for m in await sim.messages(resident) if m["sender"] == resident and m["text"] == "1"]
    assert len(typed) == 1
    assert "社区" in await sim.last(resident)  # the form moved on one step (service chosen → community)


async def test_a_poison_event_is_given_up_with_an_apology(sim: Sim, backend: Backend) -> None:
    """An event that fails every time is retried a bounded number of times, then given up: the person is
    told, and a later delivery of it is a duplicate."""
    resident = "r-poison"
    await sim.say(resident, "你好")
    await sim.accept_privacy(resident)
    async with table_away(backend.database_url, "conversation_states"):
        for _ in range(MAX_TRIES - 1):
            await sim.post("/sim/api/send", {"chat_id": resident, "user_id": resident, "text": "帮帮我",
                                             "event_id": "poison"}, expect=503)
        given_up = await sim.post("/sim/api/send", {"chat_id": resident, "user_id": resident,
                                                    "text": "帮帮我", "event_id": "poison"})
        assert given_up["duplicate"] is False
        assert "抱歉" in await sim.last(resident)
    again = await sim.post("/sim/api/send", {"chat_id": resident, "user_id": resident, "text": "帮帮我",
                                             "event_id": "poison"})
    assert again["duplicate"] is True


async def test_events_are_handled_while_redis_is_down(backend: Backend) -> None:
    """Redis only shares rate limits: with it unreachable, the whole loop still runs (each worker keeps
    its own share of the limits)."""
    cfg = demo_config(backend.database_url, "redis://127.0.0.1:1/0")  # nothing listens there
    sim = Sim(cfg, Clock(frozen_at=MONDAY_10AM_UTC), redis_prefix=backend.redis_prefix)
    await sim.start()
    try:
        number = await sim.ask_for_help("r-noredis", "为老服务", "送餐助餐", "幸福社区")
        assert "接单成功" in (await sim.press("grp-xingfu-elderly", "v-liming", "接单") or "")
        assert number in await sim.last("v-liming")
    finally:
        await sim.close()


async def test_telegram_sends_within_limits_while_redis_is_down(backend: Backend) -> None:
    """The shared rate limiter falls back to this worker's own share when Redis does not answer."""
    dead = dataclasses.replace(backend, redis_url="redis://127.0.0.1:1/0")
    async with bots(dead) as start:
        tg = await start("webhook")
        await tg.link("v-liming")
        await tg.bind("grp-xingfu-elderly", "t-xingfu-elderly")
        number = await tg.ask_for_help("r-tg-noredis", "为老服务", "送餐助餐", "幸福社区")
        assert "接单成功" in (await tg.press("grp-xingfu-elderly", "v-liming", "接单") or "")
        assert number in await tg.last("v-liming")


async def test_unchanged_card_copies_are_not_edited_again(backend: Backend) -> None:
    """Every copy remembers what it shows: a refresh edits only the copies whose content changed, so the
    group's 20-a-minute budget is spent on real changes."""
    async with bots(backend) as start:
        tg = await start("polling")
        assert tg.fake is not None and tg.app is not None
        await tg.link("v-liming")
        await tg.bind("grp-xingfu-elderly", "t-xingfu-elderly")
        number = await tg.ask_for_help("r-tg-hash", "为老服务", "送餐助餐", "幸福社区")
        await tg.press("grp-xingfu-elderly", "v-liming", "接单")
        def edit_calls() -> int:  # every attempt, also those Telegram refuses as "message is not modified"
            assert tg.fake is not None
            return sum(1 for c in tg.fake.calls if c.method == "editMessageText")

        edits = edit_calls()
        assert edits >= 2  # the group card and the volunteer's nudge changed
        async with tg.app.db.transaction() as s:
            req = await repo.request_by_number(s, number)
            assert req is not None
            for _ in range(2):
                await repo.enqueue(s, tg.app.clock.now(), "*", f"request:{req.id}", "refresh", {},
                                   request_id=req.id)
        await tg.settle_all()
        assert edit_calls() == edits  # nothing changed, nothing edited
        assert "出发" in (await tg.press("v-liming", "v-liming", "出发") or "")
        assert edit_calls() > edits  # a real change is edited as before


async def _stale_request(sim: Sim, number: str) -> HelpRequest:
    """The request as a worker read it a moment ago (before another worker's claim committed)."""
    assert sim.app is not None
    async with sim.app.db.read() as s:
        req = await repo.request_by_number(s, number)
        assert req is not None
        s.expunge(req)
        return req


async def _as_another_worker(sim: Sim, stale: HelpRequest, step: str) -> None:
    """Apply an escalation or a cancel to the stale snapshot in a transaction of its own, as a second worker
    whose read came before the claim would."""
    assert sim.app is not None
    async with sim.app.db.transaction() as s:
        ctx = Ctx(s=s, cfg=sim.app.cfg, catalog=sim.app.cfg.catalog(), now=sim.app.clock.now())
        s.add(stale)
        if step == "escalate":
            await effects.escalate(ctx, stale, stale.team_id, why="timeout")
        else:
            resident = await repo.get_person(s, stale.resident_id)
            assert resident is not None
            await ops.cancel(ctx, stale, resident)
        await ctx.flush_outbox()
    await sim.app.settle()


async def test_an_escalation_read_before_a_claim_does_not_undo_it(sim: Sim) -> None:
    """Escalate vs claim: the escalation's write is conditional, so a request claimed meanwhile is not passed
    up (no card for the parent level's team, the claim stands)."""
    number = await sim.ask_for_help("r-esc-race", "为老服务", "送餐助餐", "幸福社区")
    stale = await _stale_request(sim, number)
    assert "接单成功" in (await sim.press("grp-xingfu-elderly", "v-liming", "接单") or "")
    await _as_another_worker(sim, stale, "escalate")
    assert sim.app is not None
    async with sim.app.db.read() as s:
        req = await repo.request_by_number(s, number)
        assert req is not None and req.status == "claimed" and req.team_id == "t-xingfu-elderly"
        assert await repo.routed_team_ids(s, req.id) == ["t-xingfu-elderly"]
    assert not any(number in t for t in await sim.bot_texts("c-zhao") if "升级" in t)


async def test_a_cancel_read_before_a_claim_tells_the_claimer(sim: Sim) -> None:
    """Cancel vs claim: the claimer is read from the cancel's own write, so a claim that won a moment before
    is told that the resident cancelled."""
    number = await sim.ask_for_help("r-cancel-race", "为老服务", "送餐助餐", "幸福社区")
    stale = await _stale_request(sim, number)
    assert "接单成功" in (await sim.press("grp-xingfu-elderly", "v-liming", "接单") or "")
    await _as_another_worker(sim, stale, "cancel")
    told = [t for t in await sim.bot_texts("v-liming") if "居民取消了求助" in t]  # not the refreshed details
    assert len(told) == 1 and number in told[0], told


async def test_a_row_sent_again_after_a_lost_mark_is_shown_once(sim: Sim) -> None:
    """kill -9 between the platform's answer and the "sent" mark: another worker sends the row again. The
    simulator recognises the outbox row's delivery key and shows it once (a card keeps one ledger entry)."""
    from sqlalchemy import update

    from storage.models import LedgerEntry, OutboxMessage

    assert sim.app is not None
    number = await sim.ask_for_help("r-lost-mark", "为老服务", "打扫卫生", "幸福社区")
    await sim.app.settle()
    shown = {chat: [m["text"] for m in await sim.messages(chat)] for chat in ("r-lost-mark", "grp-xingfu-elderly")}
    async with sim.app.db.transaction() as s:  # what the database says after such a death and the lease's end
        lost = await s.execute(update(OutboxMessage).where(OutboxMessage.chat_id.in_(list(shown)))
                               .values(status="pending", sent_at=None, lease_until=None)
                               .returning(OutboxMessage.kind))
        assert {"message", "card"} <= set(lost.scalars())
    sim.app.outbox.kick()
    await sim.app.settle()
    for chat, before in shown.items():
        assert [m["text"] for m in await sim.messages(chat)] == before, chat
    async with sim.app.db.read() as s:
        pending = (await s.execute(select(OutboxMessage.id).where(OutboxMessage.status == "pending"))).all()
        req = (await s.execute(select(HelpRequest).where(HelpRequest.number == number))).scalar_one()
        cards = (await s.execute(select(LedgerEntry.message_id).where(LedgerEntry.request_id == req.id,
                                                                      LedgerEntry.kind == "group_card"))).all()
    assert pending == [] and len(cards) == 1


async def test_the_simulator_answers_503_when_its_own_tables_fail(sim: Sim, backend: Backend) -> None:
    """The simulator's chat log cannot be written (before the event reaches the core): a 503, so the caller
    sends the same call again, and after recovery it is handled once."""
    resident = "r-log-down"
    await sim.say(resident, "你好")
    async with table_away(backend.database_url, "sim_messages"):
        for path, body in (("/sim/api/send", {"chat_id": resident, "user_id": resident, "text": "为老服务",
                                              "event_id": "evt-log"}),
                           ("/sim/api/chats/" + resident + "/messages", None)):
            assert sim.http is not None
            request = sim.http.post(sim.base + path, json=body) if body else sim.http.get(sim.base + path)
            async with request as r:
                assert r.status == 503, path
                assert "again" in (await r.json())["error"]
    assert (await send_until_accepted(sim, resident, "为老服务", "evt-log"))["duplicate"] is False
    assert (await send_until_accepted(sim, resident, "为老服务", "evt-log"))["duplicate"] is True
    typed = [m for m in await sim.messages(resident) if m["sender"] == resident and m["text"] == "为老服务"]
    assert len(typed) == 1


async def test_a_message_logged_by_a_worker_that_died_is_not_shown_twice(sim: Sim) -> None:
    """The simulator logs a person's message, then the worker dies before handling it; the caller sends the same
    call (same event_id) to another worker: the chat shows the message once, and it is handled once."""
    from storage.models import SimMessage

    assert sim.app is not None and sim.http is not None
    async with sim.app.db.transaction() as s:  # what the dead worker left behind
        s.add(SimMessage(chat_id="r-died", sender="r-died", text="你好", buttons=[], edited=False,
                         created_at=sim.app.clock.now(), delivery_key="in:evt-died"))
    answer = await send_until_accepted(sim, "r-died", "你好", "evt-died")
    assert answer["duplicate"] is False
    assert (await send_until_accepted(sim, "r-died", "你好", "evt-died"))["duplicate"] is True
    msgs = await sim.messages("r-died")
    assert [m["text"] for m in msgs if m["sender"] == "r-died"] == ["你好"]
    assert len([m for m in msgs if m["sender"] == "bot"]) == 1  # the privacy notice, once
