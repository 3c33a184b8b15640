"""WeCom's limits: per-member rates, token expiry, 45009, byte lengths, kf's 48 h / 5-message budget,
msg_send_fail, the sync quirk, and handing a resident to a person and back."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.channels.wecom import render
from bot.channels.wecom.api import WecomError
from flows.types import Button, Message
from handlers.context import message_payload
from storage import repo
from tests.conftest import Backend
from tests.fakes.wecom_bot import WecomBot

RES = "wmLIMITS0001"


@pytest.fixture
async def bot(backend: Backend) -> AsyncIterator[WecomBot]:
    """The bot on WeCom."""
    b = await WecomBot.create(backend.database_url, backend.redis_url, backend.redis_prefix)
    try:
        yield b
        assert b.fake.dropped == []
    finally:
        await b.close()


async def enqueue(bot: WecomBot, channel: str, chat_id: str, texts: list[str]) -> None:
    """Queue messages as the core would."""
    async with bot.app.db.transaction() as s:
        for text in texts:
            await repo.enqueue(s, bot.clock.now(), channel, chat_id, "message", message_payload(Message(text)))
    await bot.settle()


def test_split_on_character_boundaries() -> None:
    text = "志愿" * 700 + "\n" + "服务" * 700  # 4203 bytes
    parts = render.split_bytes(text)
    assert all(len(p.encode()) <= 2048 for p in parts) and "".join(parts).replace("\n", "") == text.replace("\n", "")
    menu = render.kf_payloads(Message("选一项", tuple((Button(f"项{i}", f"v1:i:x:{i}"),) for i in range(12))))
    assert [p["msgtype"] for p in menu] == ["text"] and "12. 项11" in menu[0]["text"]["content"]
    long = render.kf_payloads(Message("很长的摘要\n" * 200 + "请确认：", ((Button("确认", "v1:i:summary:confirm"),),)))
    assert [p["msgtype"] for p in long][-1] == "msgmenu" and long[-1]["msgmenu"]["head_content"] == "请确认："


async def test_member_rate_limit_holds_and_never_drops(bot: WecomBot) -> None:
    await enqueue(bot, "wecom", "v-liming", [f"第{i}条" for i in range(35)])
    assert len(bot.fake.texts("v-liming")) == 30
    await bot.advance(seconds=61)
    assert bot.fake.texts("v-liming") == [f"第{i}条" for i in range(35)]  # all of them, in order
    assert bot.fake.violations == []


async def test_token_refreshed_once_and_45009_backs_off(bot: WecomBot) -> None:
    fake = bot.fake
    calls = fake.token_calls
    fake.expire_tokens()
    assert "/assign" in await bot.member("c-zhao", "/help")
    assert fake.token_calls == calls + 1
    fake.fail_next["message/send"] = 45009
    await fake.member_says("c-zhao", "/stats")
    await bot.settle()
    assert len(fake.texts("c-zhao")) == 1  # waiting 60 s
    await bot.advance(seconds=61)
    assert "为老服务" in fake.texts("c-zhao")[-1]


async def test_long_texts_are_split(bot: WecomBot) -> None:
    await bot.resident(RES, "你好")
    long = "很长的通知。" * 400  # 7200 bytes
    await bot.app.channels["wecom"].send("v-liming", Message(long))
    assert "".join(bot.fake.texts("v-liming")) == long
    await bot.app.channels["wecom_kf"].send(RES, Message("说明" * 500))
    assert all(len(t.encode()) <= 2048 for t in bot.fake.kf_texts(RES))
    assert bot.fake.violations == []


async def test_kf_budget_holds_then_releases_in_order(bot: WecomBot) -> None:
    fake = bot.fake
    await bot.resident(RES, "我的求助")  # one reply
    await enqueue(bot, "wecom_kf", RES, [f"通知{i}" for i in range(6)])
    assert fake.kf_texts(RES)[1:] == [f"通知{i}" for i in range(4)]  # 5 per resident message
    await bot.advance(hours=1)
    assert len(fake.kf_texts(RES)) == 5
    await bot.resident(RES, "我的求助")
    assert fake.kf_texts(RES)[5:7] == ["通知4", "通知5"]  # the held ones first, in order
    assert fake.violations == []


async def test_send_fail_over_limit_is_held_again(bot: WecomBot) -> None:
    fake = bot.fake
    await bot.resident(RES, "我的求助")
    await enqueue(bot, "wecom_kf", RES, ["重要通知"])
    msgid = fake.kf_out[RES][-1]["msgid"]
    await fake.kf_event(RES, {"event_type": "msg_send_fail", "fail_msgid": msgid, "fail_type": 6}, times=3)
    await bot.settle()
    assert fake.kf_texts(RES).count("重要通知") == 1
    await bot.resident(RES, "我的求助")
    assert fake.kf_texts(RES).count("重要通知") == 2  # sent again once the resident wrote


async def test_sync_goes_on_after_an_empty_page(bot: WecomBot) -> None:
    bot.fake.empty_page_once = True
    await bot.resident(RES, "你好")
    assert len(bot.fake.kf_texts(RES)) == 1  # the privacy notice


async def test_hand_over_to_a_person_and_back(bot: WecomBot) -> None:
    fake = bot.fake
    await fake.enter_session(RES, "s-xingfu")
    await bot.resident(RES, "人工")
    assert fake.trans_log[-1]["service_state"] == 3 and fake.trans_log[-1]["servicer_userid"] == "c-chu"
    assert "转接" in fake.kf_texts(RES)[-1]
    assert "人工服务" in fake.texts("c-chu")[-1]
    shown = len(fake.kf_texts(RES))
    await bot.resident(RES, "你好")  # a person serves: the bot is silent
    assert len(fake.kf_texts(RES)) == shown
    assert "1 位" in await bot.member("c-chu", "/handback")
    assert fake.trans_log[-1]["service_state"] == 1
    assert "人工服务已结束" in fake.kf_texts(RES)[-1]
    await bot.resident(RES, "你好")
    assert "隐私说明" in fake.kf_texts(RES)[-1]  # the bot talks again: a new resident's first answer
    assert "没有接待中" in await bot.member("c-chu", "/handback")
    # the session ending in WeCom's own tools also gives the resident back
    await bot.resident(RES, "转人工")
    await fake.kf_event(RES, {"event_type": "session_status_change", "change_type": 3})
    await bot.settle()
    await bot.resident(RES, "你好")
    assert "隐私说明" in fake.kf_texts(RES)[-1]  # the bot talks again: a new resident's first answer
    assert fake.violations == []


async def test_kf_a_held_message_is_never_overtaken(bot: WecomBot) -> None:
    fake = bot.fake
    await bot.resident(RES, "我的求助")  # one reply: 4 of 5 left
    long = "说明" * 400  # 2400 bytes: two kf messages
    await enqueue(bot, "wecom_kf", RES, ["通知0", "通知1", "通知2", long, "通知3"])
    assert fake.kf_texts(RES)[1:] == ["通知0", "通知1", "通知2"]  # the long one does not fit; 通知3 waits behind it
    await bot.resident(RES, "我的求助")
    after = fake.kf_texts(RES)[4:]
    assert "".join(after[:2]) == long and after[2] == "通知3", after
    assert fake.violations == []


async def test_token_refused_again_is_refreshed_once_not_in_a_loop(bot: WecomBot) -> None:
    fake = bot.fake
    api = bot.app.channels["wecom"].api  # type: ignore[attr-defined]
    calls = fake.token_calls
    fake.expire_tokens()
    fake.token_lifetime = 0  # every fresh token is refused too
    with pytest.raises(WecomError) as refused:
        await api.call("message/send", {"touser": "v-liming", "msgtype": "text", "agentid": fake.agent_id,
                                        "text": {"content": "hi"}})
    assert refused.value.errcode == 42001
    assert fake.token_calls == calls + 1  # one refresh for the one failure, then the error


async def test_crisis_words_during_a_hand_over_open_a_case(bot: WecomBot) -> None:
    fake = bot.fake
    await fake.enter_session(RES, "s-xingfu")
    await bot.resident(RES, "人工")
    shown = len(fake.kf_texts(RES))
    await bot.resident(RES, "今天天气不错")  # ordinary words: the bot stays out of it
    assert not any("心理危机" in t for t in fake.texts("v-sunli"))
    await bot.resident(RES, "我真的不想活了")  # a person serves, but the words still reach the counsellor
    alert = fake.texts("v-sunli")[-1]
    assert "心理危机" in alert and "不想活" in alert and "幸福社区" in alert
    assert len(fake.kf_texts(RES)) == shown  # nothing sent while the servicer talks; the hotlines are held
    assert "1 位" in await bot.member("c-chu", "/handback")
    assert any("12356" in t for t in fake.kf_texts(RES)[shown:])
