"""The WeCom smart robot ("wecom_bot") end to end: the real SDK against the local fake WebSocket endpoint,
the bot driven through the simulator for residents, on SQLite and on PostgreSQL + Redis."""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import Clock
from storage.db import Database
from storage.models import Claim, GroupBinding, OutboxMessage
from tests.conftest import Backend
from tests.fakes.aibot import FakeAibot, aibot_config, wecom_userid
from tests.simclient import CROWD, MONDAY_10AM_UTC, Sim, add_crowd, demo_config

GROUP = "wrkEXAMPLEgroup01"  # the WeCom chatid of 幸福社区为老服务队's group
TEAM = "t-xingfu-elderly"
ELDERLY = ("为老服务", "陪同就医", "幸福社区")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAibot]:
    """The fake smart-robot endpoint."""
    f = await FakeAibot().start()
    try:
        yield f
    finally:
        await f.stop()


async def start_sim(backend: Backend, fake: FakeAibot, *more: Callable[[dict[str, Any]], None],
                    clock: Clock | None = None) -> Sim:
    """A running bot with the robot enabled, connected to the fake."""
    def mutate(data: dict[str, Any]) -> None:
        for m in more:
            m(data)
        aibot_config(fake)(data)

    cfg = demo_config(backend.database_url, backend.redis_url, mutate)
    sim = await Sim(cfg, clock or Clock(frozen_at=MONDAY_10AM_UTC), redis_prefix=backend.redis_prefix).start()
    await fake.wait_for(lambda: fake.live(), what="the robot to subscribe")
    return sim


async def close(sim: Sim, fake: FakeAibot) -> None:
    """Stop the bot; no group message ever carried a resident's phone or address."""
    shown = fake.markdowns_in(GROUP) + [card_text(c.card) for c in fake.cards.values()]
    for text in shown + [card_text(u["template_card"]) for u in fake.updates]:
        assert not re.search(r"1[3-9]\d{9}", text), text
        for secret in sim.secrets:
            assert secret not in text, text
    await sim.close()


async def mention(fake: FakeAibot, text: str, user: str = "c-zhao", chat: str = GROUP,
                  userid: Callable[[str], str] = wecom_userid) -> str:
    """Someone @-mentions the robot in the group; returns the robot's markdown answer."""
    before = len(fake.markdowns_in(chat))
    await fake.say(chat, userid(user), f"@五为助手 {text}")
    await fake.wait_for(lambda: len(fake.markdowns_in(chat)) > before, what=f"an answer to {text!r}")
    return fake.markdowns_in(chat)[-1]


async def bindings(backend: Backend) -> list[tuple[str, str]]:
    """The robot's group bindings (chat, team) in the database."""
    db = Database(backend.database_url)
    try:
        async with db.transaction() as s:
            rows = (await s.execute(select(GroupBinding).where(GroupBinding.channel == "wecom_bot"))).scalars()
            return [(r.chat_id, r.team_id) for r in rows]
    finally:
        await db.dispose()


async def test_bind_rebind_and_unbind_by_mention(backend: Backend, fake: FakeAibot) -> None:
    sim = await start_sim(backend, fake)
    try:
        assert "已绑定到「幸福社区为老服务队」" in await mention(fake, f"/bind {TEAM}")
        assert await bindings(backend) == [(GROUP, TEAM)]
        assert "不用再绑定" in await mention(fake, f"/bind {TEAM}")
        refused = await mention(fake, "/bind t-xingfu-children")
        assert "一个群只能绑定一个服务队" in refused and "幸福社区为老服务队" in refused
        assert await bindings(backend) == [(GROUP, TEAM)]
        # someone the bot does not know is told how to get known; a volunteer may not bind
        assert "/link" in await mention(fake, "/bind t-xingfu-children", user="stranger")
        assert "专管员" in await mention(fake, "/bind t-xingfu-children", user="v-liming")
        assert "已解除" in await mention(fake, "/unbind")
        assert await bindings(backend) == []
        assert "已绑定到「幸福社区为小服务队」" in await mention(fake, "/bind t-xingfu-children")
        assert await bindings(backend) == [(GROUP, "t-xingfu-children")]
    finally:
        await close(sim, fake)


def card_text(card: dict[str, Any]) -> str:
    """Everything a template card shows, as one string."""
    main = card.get("main_title") or {}
    return "\n".join([main.get("title", ""), main.get("desc", ""), card.get("sub_title_text", "")]
                     + [b["text"] for b in card.get("button_list", [])])


async def new_card(fake: FakeAibot, number: str, chat: str = GROUP) -> tuple[str, str]:
    """(task id, claim key) of the card of request `number` once the robot has pushed it."""
    found = await fake.wait_for(lambda: [(tid, c) for tid, c in fake.cards_in(chat) if number in card_text(c.card)],
                                what=f"the card of {number}")
    assert len(found) == 1, found  # posted once
    task_id, card = found[0]
    return task_id, card.card["button_list"][0]["key"]


async def wait_text(sim: Sim, chat: str, needle: str) -> str:
    """The simulator chat's latest bot message once it contains `needle` (delivery is asynchronous)."""
    async def check() -> str | None:
        last = await sim.last(chat)
        return last if needle in last else None

    for _ in range(500):
        if got := await check():
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"{chat} never showed {needle!r}: {await sim.last(chat)!r}")


async def test_group_claim_end_to_end(backend: Backend, fake: FakeAibot) -> None:
    sim = await start_sim(backend, fake)
    try:
        await mention(fake, f"/bind {TEAM}")
        number = await sim.ask_for_help("r-aibot", *ELDERLY)

        # 派单: a button card in the WeCom group with only what the group may see
        task_id, key = await new_card(fake, number)
        card = fake.cards[task_id].card
        shown = card_text(card)
        for part in ("为老服务", "陪同就医", number, "幸福社区", "11月24日", "一般"):
            assert part in shown, (part, shown)
        assert "张阿姨" not in shown and "幸福路" not in shown and "腿脚" not in shown
        assert card["card_type"] == "button_interaction" and card["button_list"][0]["text"] == "接单"
        assert key.startswith("v1:claim:")
        # the team's group has the card, so its members get no 1:1 WeCom app cards
        assert await count_outbox(backend, channel="wecom", ledger_kind="nudge") == 0

        # 接单 by a click: the card changes for everyone, with the click's req_id
        req_id = await fake.click(GROUP, wecom_userid("v-liming"), task_id, key)
        await fake.wait_for(lambda: fake.updates, what="the card update")
        update = fake.updates[0]
        assert "userids" not in update and fake.clicks[req_id].used
        assert "已由 李明 接单" in card_text(fake.cards[task_id].card)
        # every copy everywhere: the simulator group's card too; the details privately to the winner
        # (this test runs without the corp app channel, so they arrive on 李明's simulator identity)
        assert "已由 李明 接单" in [m for m in await sim.bot_texts("grp-xingfu-elderly") if number in m][-1]
        details = await wait_text(sim, "v-liming", "13812345678")
        assert "幸福路12号3单元401" in details
        assert "接单" in await sim.last("r-aibot")

        # a late click: that member alone sees the card with the answer
        await fake.click(GROUP, wecom_userid("v-zhangwei"), task_id, key)
        await fake.wait_for(lambda: len(fake.updates) == 2, what="the answer to a late click")
        late = fake.updates[1]
        assert late["userids"] == [wecom_userid("v-zhangwei")]
        assert "已经有人接了" in late["template_card"]["sub_title_text"]
        assert "已由 李明 接单" in card_text(fake.cards[task_id].card)  # everyone else: unchanged

        # someone outside the team clicks an open card: told so, nothing changes
        number2 = await sim.ask_for_help("r-aibot2", *ELDERLY)
        task2, key2 = await new_card(fake, number2)
        await fake.click(GROUP, wecom_userid("v-liuyang"), task2, key2)
        await fake.wait_for(lambda: len(fake.updates) == 3, what="the answer to an outsider")
        assert "不在该队" in fake.updates[2]["template_card"]["sub_title_text"]

        # a claim elsewhere (the simulator's group): no click to answer, so a notice in the group
        before = len(fake.markdowns_in(GROUP))
        assert "接单成功" in (await sim.press("grp-xingfu-elderly", "v-zhangwei", "接单", contains=number2) or "")
        notices = fake.markdowns_in(GROUP)[before:]
        assert len(notices) == 1 and number2 in notices[0] and "已由 张伟 接单" in notices[0], notices
        assert len(fake.updates) == 3
    finally:
        await close(sim, fake)


async def count_outbox(backend: Backend, **where: Any) -> int:
    """Outbox rows matching column values."""
    db = Database(backend.database_url)
    try:
        async with db.transaction() as s:
            q = select(OutboxMessage).filter_by(**where)
            return len(list((await s.execute(q)).scalars()))
    finally:
        await db.dispose()


async def claims(backend: Backend, request_number: str) -> list[str]:
    """Volunteers holding a claim on the request with this number."""
    from storage.models import HelpRequest

    db = Database(backend.database_url)
    try:
        async with db.transaction() as s:
            q = select(Claim.volunteer_id).join(HelpRequest, HelpRequest.id == Claim.request_id).where(
                HelpRequest.number == request_number)
            return list((await s.execute(q)).scalars())
    finally:
        await db.dispose()


async def test_twenty_clicks_one_winner_one_update(backend: Backend, fake: FakeAibot) -> None:
    sim = await start_sim(backend, fake, add_crowd)
    try:
        await mention(fake, f"/bind {TEAM}")
        number = await sim.ask_for_help("r-race", *ELDERLY)
        task_id, key = await new_card(fake, number)
        clickers = CROWD[:20]
        await asyncio.gather(*(fake.click(GROUP, wecom_userid(v), task_id, key) for v in clickers))
        await fake.wait_for(lambda: len(fake.updates) == 20, what="an answer to every click")
        winners = await claims(backend, number)
        assert len(winners) == 1 and winners[0] in clickers
        everyone = [u for u in fake.updates if "userids" not in u]
        assert len(everyone) == 1  # one update of the card for the whole group
        assert f"已由 志愿者{winners[0][-2:]} 接单" in card_text(everyone[0]["template_card"])
        personal = [u for u in fake.updates if "userids" in u]
        assert sorted(u["userids"][0] for u in personal) == sorted(wecom_userid(v) for v in clickers
                                                                  if v != winners[0])
        assert all("已经有人接了" in u["template_card"]["sub_title_text"] for u in personal)
        assert not fake.rejected
    finally:
        await close(sim, fake)


async def test_refused_card_falls_back_to_app_cards_and_tells_coordinators(backend: Backend,
                                                                           fake: FakeAibot) -> None:
    sim = await start_sim(backend, fake)
    try:
        await mention(fake, f"/bind {TEAM}")
        fake.interacted.discard(GROUP)  # the robot was taken out of the group: pushes there are refused
        number = await sim.ask_for_help("r-fallback", *ELDERLY)
        await fake.wait_for(lambda: fake.rejected, what="the refused push")
        assert not fake.cards_in(GROUP)
        # the coordinators in charge hear of it (c-chu runs the station)
        told = await wait_text(sim, "c-chu", "智能机器人")
        assert number in told and "幸福社区为老服务队" in told
        # the on-duty members get the 1:1 WeCom app card the group would have made unnecessary (one
        # fan-out post; this test runs without the corp app channel, so only the queued row is checked)
        db = Database(backend.database_url)
        try:
            async with db.transaction() as s:
                rows = list((await s.execute(select(OutboxMessage).where(
                    OutboxMessage.channel == "wecom", OutboxMessage.ledger_kind == "nudge"))).scalars())
        finally:
            await db.dispose()
        assert [r.chat_id for r in rows] == [f"{wecom_userid('v-liming')}|{wecom_userid('v-zhangwei')}"]
    finally:
        await close(sim, fake)
