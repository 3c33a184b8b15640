"""The smart robot's group cards over a request's life (given back, reminders, progress), frame dedupe,
malformed frames and the per-chat rate limit."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.clock import Clock
from storage.db import Database
from storage.models import OutboxMessage
from tests.conftest import Backend
from tests.fakes.aibot import FakeAibot, wecom_userid
from tests.simclient import MONDAY_10AM_UTC
from tests.test_aibot import ELDERLY, GROUP, TEAM, card_text, close, fake, mention, new_card, start_sim

__all__ = ["fake"]  # the fixture


async def test_given_back_gets_a_fresh_card_and_progress_stays_quiet(backend: Backend, fake: FakeAibot) -> None:
    sim = await start_sim(backend, fake)
    try:
        await mention(fake, f"/bind {TEAM}")
        number = await sim.ask_for_help("r-back", *ELDERLY)
        task1, key = await new_card(fake, number)
        await fake.click(GROUP, wecom_userid("v-liming"), task1, key)
        await fake.wait_for(lambda: fake.updates, what="the card update")
        said = len(fake.markdowns_in(GROUP))
        # 出发 is the claimer's own business: the group is not pinged
        assert "出发" in (await sim.press("v-liming", "v-liming", "出发") or "")
        assert len(fake.markdowns_in(GROUP)) == said
        # given back: the old card cannot get its button back, so a fresh card goes up (once)
        await sim.press("v-liming", "v-liming", "无法前往，退回")
        await fake.wait_for(lambda: len(fake.cards_in(GROUP)) == 2, what="a fresh card")
        task2 = fake.cards_in(GROUP)[1][0]
        assert number in card_text(fake.cards[task2].card) and fake.cards[task2].card["button_list"][0]["key"] == key
        assert "已由 李明 接单" in card_text(fake.cards[task1].card)  # the old one is left as it was
        await fake.click(GROUP, wecom_userid("v-zhangwei"), task2, key)
        await fake.wait_for(lambda: len(fake.updates) == 2, what="the update of the fresh card")
        assert "userids" not in fake.updates[1] and "已由 张伟 接单" in card_text(fake.cards[task2].card)
        assert len(fake.markdowns_in(GROUP)) == said and len(fake.cards_in(GROUP)) == 2
        # two months on, the leader forgets the settled cards' records
        assert sim.app is not None
        sim.app.clock.advance(timedelta(days=61))
        assert await sim.app.channels["wecom_bot"].sender.prune() >= 3  # type: ignore[attr-defined]
    finally:
        await close(sim, fake)


async def test_a_reminder_card_and_a_claim_elsewhere_make_one_notice(backend: Backend, fake: FakeAibot) -> None:
    sim = await start_sim(backend, fake)
    try:
        await mention(fake, f"/bind {TEAM}")
        number = await sim.ask_for_help("r-remind", *ELDERLY)
        await new_card(fake, number)
        await sim.advance(31)  # nobody claimed it: the reminder goes to the group too
        await fake.wait_for(lambda: len(fake.cards_in(GROUP)) == 2, what="the reminder card")
        said = len(fake.markdowns_in(GROUP))
        await sim.press("grp-xingfu-elderly", "v-zhangwei", "接单", contains=number)
        notices = fake.markdowns_in(GROUP)[said:]
        assert len(notices) == 1 and number in notices[0] and "已由 张伟 接单" in notices[0], notices
    finally:
        await close(sim, fake)


async def test_frames_are_deduped_and_bad_frames_change_nothing(backend: Backend, fake: FakeAibot) -> None:
    sim = await start_sim(backend, fake)
    try:
        # malformed or foreign frames: ignored, the worker stays alive
        for body in ({}, {"msgtype": "text"}, {"msgid": "x1", "msgtype": "text", "chattype": "group"},
                     {"msgid": "x2", "msgtype": "text", "chattype": "group", "chatid": GROUP, "from": "nobody",
                      "text": {"content": "/bind t-xingfu-elderly"}},
                     {"msgid": "x3", "msgtype": "image", "chattype": "group", "chatid": GROUP,
                      "from": {"userid": wecom_userid("c-zhao")}}):
            await fake.push("aibot_msg_callback", body)
        for event in ("nope", {"eventtype": "template_card_event"}, {"eventtype": "enter_chat"},
                      {"eventtype": "template_card_event", "template_card_event": {"task_id": 5, "event_key": []}}):
            await fake.push("aibot_event_callback", {"msgid": f"e-{event!s:.10}", "msgtype": "event",
                                                     "chatid": GROUP, "event": event})
        await fake.say(GROUP, wecom_userid("c-zhao"), "@五为助手 /bind t-xingfu-elderly", chattype="single")
        # the same msgid twice (a redelivery): one answer
        before = len(fake.markdowns_in(GROUP))
        await fake.say(GROUP, wecom_userid("c-zhao"), f"@五为助手 /bind {TEAM}", msgid="m-dup")
        await fake.say(GROUP, wecom_userid("c-zhao"), f"@五为助手 /bind {TEAM}", msgid="m-dup")
        await fake.wait_for(lambda: len(fake.markdowns_in(GROUP)) > before, what="the answer")
        await mention(fake, "/help")  # a later frame has been answered: the repeat is long done
        texts = fake.markdowns_in(GROUP)[before:]
        assert len(texts) == 2 and "已绑定" in texts[0], texts
        number = await sim.ask_for_help("r-dup", *ELDERLY)
        task_id, key = await new_card(fake, number)
        for _ in range(2):
            await fake.click(GROUP, wecom_userid("v-liming"), task_id, key, msgid="c-dup")
        await fake.wait_for(lambda: fake.updates, what="the card update")
        await mention(fake, "/help")  # a later frame has been handled: the repeat is long done
        assert len(fake.updates) == 1 and fake.live()
    finally:
        await close(sim, fake)


async def test_thirty_messages_a_minute_per_group(backend: Backend, fake: FakeAibot) -> None:
    clock = Clock(frozen_at=MONDAY_10AM_UTC)
    sim = await start_sim(backend, fake, clock=clock)
    fake.now = lambda: (clock.now() - datetime(2026, 1, 1)).total_seconds()  # the platform's minute = ours
    try:
        await mention(fake, f"/bind {TEAM}")
        await asyncio.gather(*(fake.say(GROUP, wecom_userid("c-zhao"), f"@五为助手 /bind {TEAM}")
                               for _ in range(31)))
        await fake.wait_for(lambda: len(fake.markdowns_in(GROUP)) == 30, what="30 answers")
        for _ in range(500):  # the other two are held back in the outbox, not sent over the limit
            if await waiting(backend) == 2:
                break
            await asyncio.sleep(0.02)
        assert await waiting(backend) == 2 and len(fake.markdowns_in(GROUP)) == 30
        clock.advance(timedelta(seconds=61))
        assert sim.app is not None
        await sim.app.settle()
        await fake.wait_for(lambda: len(fake.markdowns_in(GROUP)) == 32, what="the held answers")
        assert not fake.rejected
    finally:
        await close(sim, fake)


async def waiting(backend: Backend) -> int:
    """Rows for the robot's group still waiting in the outbox."""
    db = Database(backend.database_url)
    try:
        async with db.transaction() as s:
            q = select(OutboxMessage).where(OutboxMessage.channel == "wecom_bot", OutboxMessage.chat_id == GROUP,
                                            OutboxMessage.status == "pending")
            return len(list((await s.execute(q)).scalars()))
    finally:
        await db.dispose()
