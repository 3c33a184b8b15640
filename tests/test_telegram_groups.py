"""Telegram team groups: 30 volunteers pressing 接单 at once, the bot joining a group, group chatter,
a claimer the bot cannot write to privately, a group upgraded to a supergroup."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from flows.i18n import t
from storage import channel_repo
from storage.models import HelpRequest, Person
from tests.conftest import Backend
from tests.fakes.telegram import fixture
from tests.fakes.telegram_sim import STEP, Factory, bots
from tests.simclient import CROWD, add_crowd

GROUP, TEAM = "grp-xingfu-elderly", "t-xingfu-elderly"


@pytest.fixture
async def make(backend: Backend) -> AsyncIterator[Factory]:
    """Start bots on this backend (closed at the end); c-zhao is linked in each."""
    async with bots(backend) as start:
        yield start


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_thirty_volunteers_press_claim_at_once(make: Factory, mode: str) -> None:
    tg = await make(mode, add_crowd)
    assert tg.fake is not None and tg.app is not None
    crowd = CROWD[:30]
    async with tg.app.db.transaction() as s:  # link the crowd's accounts (as /link would, 30 times)
        for v in crowd:
            uid = str(tg.uid(v))
            await channel_repo.link_identity(s, "telegram", uid, uid, await s.get(Person, v), v)
    for v in crowd:
        tg.fake.open_chat(tg.chat_json(v))
    await tg.bind(GROUP, TEAM)
    number = await tg.ask_for_help("r-race", "为老服务", "陪同就医", "幸福社区")
    message_id, data = await tg.find_button(GROUP, "接单")
    # someone the bot does not know is answered too, with their own text (and the card stays open)
    assert await tg.press_data(GROUP, "x-stranger", message_id, data) == t("zh_CN", "claim.not_volunteer")
    edits_before = tg.fake.count("editMessageText", chat_id=tg.uid(GROUP), message_id=int(message_id))
    presses = [tg.press_update(GROUP, v, message_id, data) for v in crowd]
    tg.app.clock.advance(STEP)
    if mode == "webhook":
        statuses = await asyncio.gather(*(tg.fake.deliver(u) for u, _ in presses))
        assert statuses == [200] * 30
    else:
        for update, _ in presses:
            tg.fake.enqueue(update)
        await tg.fake.wait_confirmed(presses[-1][0]["update_id"])
    await tg.settle_all()
    answers = [tg.fake.answers.get(qid) for _, qid in presses]
    assert sum(a == t("zh_CN", "claim.won") for a in answers) == 1, answers
    assert sum(a == t("zh_CN", "claim.taken") for a in answers) == 29, answers
    assert tg.fake.count("answerCallbackQuery") >= 30 and not tg.fake.open_queries
    winner = crowd[[a == t("zh_CN", "claim.won") for a in answers].index(True)]
    assert tg.fake.count("editMessageText", chat_id=tg.uid(GROUP), message_id=int(message_id)) == edits_before + 1
    async with tg.app.db.transaction() as s:
        req = (await s.execute(select(HelpRequest).where(HelpRequest.number == number))).scalar_one()
        assert req.volunteer_id == winner
    assert "13812345678" in await tg.last(winner)
    for v in crowd:  # the others got nothing privately (the crowd is not on the duty roster)
        assert v == winner or not any(number in text for text in await tg.bot_texts(v))


async def test_edited_messages_media_and_group_chatter_are_not_answered(make: Factory) -> None:
    tg = await make("polling")
    assert tg.fake is not None
    await tg.say("r-quiet", "你好")
    await tg.accept_privacy("r-quiet")
    before = await tg.bot_texts("r-quiet")
    edited = fixture("edited_message")
    edited["edited_message"].update(**{"from": tg.user_json("r-quiet"), "chat": tg.chat_json("r-quiet")})
    await tg.feed(tg.fake.new_update(edited))
    assert await tg.bot_texts("r-quiet") == before
    await tg.feed(tg.message_update("r-quiet", "r-quiet", sticker={"file_id": "x", "file_unique_id": "y",
                                                                   "type": "regular", "width": 512,
                                                                   "height": 512, "is_animated": False,
                                                                   "is_video": False}))
    assert await tg.last("r-quiet") == t("zh_CN", "intake.voice")
    await tg.bind(GROUP, TEAM)
    shown = len(await tg.bot_texts(GROUP))
    await tg.send(GROUP, "r-quiet", "大家好，请问怎么求助？")
    await tg.send(GROUP, "c-zhao", f"/bind@some_other_bot {TEAM}")  # for another bot: not ours
    assert len(await tg.bot_texts(GROUP)) == shown


async def test_bot_added_to_a_group_explains_bind_once(make: Factory) -> None:
    tg = await make("webhook")
    assert tg.fake is not None
    update = tg.added_update("grp-new", "c-zhao")
    await tg.feed(update)
    assert await tg.fake.deliver(update) == 200  # redelivered: no second greeting
    await tg.settle_all()
    assert await tg.bot_texts("grp-new") == [t("zh_CN", "telegram.group_added")]
    await tg.send("grp-new", "c-zhao", f"/bind@{tg.fake.username} {TEAM}")
    assert "已绑定" in await tg.last("grp-new")
    await tg.send("grp-new", "v-liming", f"/bind@{tg.fake.username} t-xingfu-children")  # not linked
    assert "关联码" in await tg.last("grp-new")


async def test_claimer_without_a_private_chat_is_asked_in_the_group(make: Factory) -> None:
    tg = await make("polling")
    assert tg.fake is not None
    await tg.link("v-liming")
    await tg.bind(GROUP, TEAM)
    number = await tg.ask_for_help("r-blocked", "为老服务", "陪同就医", "幸福社区")
    tg.fake.blocked_users.add(tg.uid("v-liming"))  # the volunteer blocked the bot since
    assert "接单成功" in (await tg.press(GROUP, "v-liming", "接单") or "")
    notice = await tg.last(GROUP)
    assert number in notice and "李明" in notice
    assert "私聊" in notice and "13812345678" not in notice and "幸福路" not in notice
    card = [m for m in await tg.messages(GROUP) if number in m["text"] and "【" in m["text"]][-1]
    assert "已由" in card["text"]  # the claim stands


async def test_group_upgraded_to_supergroup_keeps_its_binding(make: Factory) -> None:
    tg = await make("webhook")
    assert tg.fake is not None
    old, new = -4012345678, -1001987654321
    tg.ids.update({"grp-old": old, "grp-new": new})
    await tg.bind("grp-old", TEAM)
    moved = fixture("group_migrated")
    tg.fake.open_chat({"id": new, "title": "grp-new", "type": "supergroup"})
    await tg.feed(tg.fake.new_update(moved))
    number = await tg.ask_for_help("r-moved", "为老服务", "打扫卫生", "幸福社区")
    assert number in await tg.last("grp-new")


async def test_a_card_sent_before_the_bot_saw_the_upgrade_reaches_the_supergroup(make: Factory) -> None:
    tg = await make("webhook")
    assert tg.fake is not None
    old, new = -4012345679, -1001987654322
    tg.ids.update({"grp-old": old, "grp-new": new})
    await tg.bind("grp-old", TEAM)
    first = await tg.ask_for_help("r-moving", "为老服务", "打扫卫生", "幸福社区")
    assert first in await tg.last("grp-old")
    tg.fake.open_chat({"id": new, "title": "grp-new", "type": "supergroup"})
    tg.fake.migrated[old] = new  # upgraded; the service message has not reached the bot yet
    number = await tg.ask_for_help("r-moving2", "为老服务", "代买物品", "幸福社区")
    assert number in await tg.last("grp-new")  # the card is not dropped: it follows the group
    # the old group's card cannot be edited any more: that copy is given up, nothing waits forever
    await tg.say("r-moving", "我的求助")
    assert await tg.press("r-moving", "r-moving", f"取消 …{first[-4:]}") == "已取消"
    assert await tg.next_due() is None
