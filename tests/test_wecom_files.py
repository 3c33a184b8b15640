"""导出我的数据 as a real file on WeCom: media/upload, then a file message through 微信客服 (kf) or the corp app;
a failed upload is retried by the outbox, and a document counts twice in kf's 5-message budget."""
from __future__ import annotations

import json

import aiohttp
import pytest
from sqlalchemy import select

from bot.channels.base import PermanentSendError
from bot.channels.wecom import store
from bot.channels.wecom.api import FILE_MAX_BYTES, WecomApi
from flows.types import Message
from handlers.context import message_payload
from storage import repo
from storage.models import OutboxMessage
from tests.fakes.wecom_bot import WecomBot
from tests.test_wecom_e2e import ask_for_help

RES = "wmFILES00001"


async def kf_used(bot: WecomBot, user: str) -> int:
    """How much of the resident's 5-message budget the bot has counted since their last message."""
    async with bot.app.db.transaction() as s:
        session = await store.kf_session(s, user)
        assert session is not None
        return session.sent_since_inbound


async def test_kf_resident_gets_the_export_as_a_file(bot: WecomBot) -> None:
    fake = bot.fake
    number = await ask_for_help(bot, RES)
    await bot.resident(RES, "导出我的数据")
    files = fake.kf_files(RES)
    assert len(files) == 1, fake.kf_texts(RES)
    filename, content = files[0]
    assert filename.startswith("wuwei-data-") and filename.endswith(".json")
    data = json.loads(content)
    assert data["requests"][0]["number"] == number and data["requests"][0]["phone"] == "13812345678"
    texts = fake.kf_texts(RES)
    assert "JSON" in texts[-2] and filename in texts[-2]  # the caption comes first
    assert texts[-1] == f"[文件] {filename}"  # then the file itself
    assert fake.media[fake.kf_out[RES][-1]["file"]].content_type == "application/json"
    # the file is a message of kf's budget like any other: caption + file = 2, on both sides
    assert fake.kf_users[RES].sent == 2 and await kf_used(bot, RES) == 2


async def test_corp_app_user_gets_the_export_as_a_file(bot: WecomBot) -> None:
    fake = bot.fake
    await bot.member("v-liming", "导出我的数据")
    files = fake.app_files("v-liming")
    assert len(files) == 1, fake.texts("v-liming")
    filename, content = files[0]
    assert filename.endswith(".json")
    data = json.loads(content)
    assert data["person"]["phone"] == "13800000001" and data["person"]["name"] == "李明"
    texts = fake.texts("v-liming")
    assert "JSON" in texts[-2] and texts[-1] == f"[文件] {filename}"
    assert not fake.app_files("v-zhangwei")  # to that member alone


@pytest.mark.parametrize("channel", ["wecom_kf", "wecom"])
async def test_a_failed_upload_is_retried_not_lost(bot: WecomBot, channel: str) -> None:
    fake = bot.fake
    user = RES if channel == "wecom_kf" else "v-liming"
    if channel == "wecom_kf":
        await bot.resident(user, "你好")  # the privacy notice
    fake.fail_next["media/upload"] = -1  # 系统繁忙: WeCom could not take the file this time
    before = len(fake.kf_out[user]) + len(fake.app_inbox[user])
    if channel == "wecom_kf":
        await bot.resident(user, "导出我的数据")
        assert await kf_used(bot, user) == 0  # nothing went out: the budget is given back
    else:
        await fake.member_says(user, "导出我的数据")
        await bot.settle()
    assert fake.violations == [("media/upload", -1, "injected")]
    fake.violations.clear()
    assert len(fake.kf_out[user]) + len(fake.app_inbox[user]) == before  # not even the caption
    async with bot.app.db.read() as s:
        rows = list((await s.execute(select(OutboxMessage).where(
            OutboxMessage.channel == channel, OutboxMessage.chat_id == user,
            OutboxMessage.status == "pending"))).scalars())
    assert len(rows) == 1 and rows[0].payload.get("document"), rows  # kept in the outbox, to be tried again
    await bot.advance(seconds=5)
    files = fake.kf_files(user) if channel == "wecom_kf" else fake.app_files(user)
    assert len(files) == 1 and json.loads(files[0][1])["person"]["name"] is not None
    shown = fake.kf_texts(user) if channel == "wecom_kf" else fake.texts(user)
    assert sum("JSON" in t for t in shown) == 1  # the caption once
    assert fake.uploads == 1


async def test_a_connection_lost_mid_send_gives_back_the_parts_never_tried(bot: WecomBot) -> None:
    """The caption of an export goes out and the connection drops before WeCom answers: whether WeCom took it
    cannot be known, so that part stays counted (never more than WeCom's 5); the file part, never tried, is
    given back; the outbox sends the whole message again."""
    fake = bot.fake
    await bot.resident(RES, "你好")
    fake.cut_next.add("kf/send_msg")
    await bot.resident(RES, "导出我的数据")
    assert not fake.cut_next and fake.kf_files(RES) == []
    assert await kf_used(bot, RES) == 1  # the caption that may have gone out; not the file
    await bot.advance(seconds=5)
    assert len(fake.kf_files(RES)) == 1
    assert await kf_used(bot, RES) == 3 and fake.kf_users[RES].sent == 2


async def test_kf_budget_counts_the_file(bot: WecomBot) -> None:
    fake = bot.fake
    await bot.resident(RES, "你好")
    await bot.advance(hours=49)  # the 48 h window is over: what the core says now is held
    async with bot.app.db.transaction() as s:
        for i in range(4):
            await repo.enqueue(s, bot.clock.now(), "wecom_kf", RES, "message", message_payload(Message(f"通知{i}")))
    await bot.settle()
    assert not any(t.startswith("通知") for t in fake.kf_texts(RES))
    # writing again releases the 4 held messages first; caption + file would be the 6th message: held whole
    await bot.resident(RES, "导出我的数据")
    assert [t for t in fake.kf_texts(RES) if t.startswith("通知")] == [f"通知{i}" for i in range(4)]
    assert fake.kf_files(RES) == [] and not any("JSON" in t for t in fake.kf_texts(RES))
    assert fake.kf_users[RES].sent == 4
    await bot.resident(RES, "好的")  # the next message brings the export, caption and file together
    texts = fake.kf_texts(RES)
    assert len(fake.kf_files(RES)) == 1 and sum("JSON" in t for t in texts) == 1
    assert texts.index(f"[文件] {fake.kf_files(RES)[0][0]}") == next(i for i, t in enumerate(texts) if "JSON" in t) + 1


async def test_upload_limits(bot: WecomBot) -> None:
    """The fake holds the bot to WeCom's rules for media/upload and file messages; the bot refuses a file over
    20 MB itself, without calling WeCom."""
    fake = bot.fake
    api: WecomApi = bot.app.channels["wecom"].api  # type: ignore[attr-defined]
    with pytest.raises(PermanentSendError):
        await api.upload_file("big.json", b"x" * (FILE_MAX_BYTES + 1), "application/json")
    assert fake.uploads == 0 and fake.violations == []
    token = await api.token()
    async with aiohttp.ClientSession() as http:
        async def upload(kind: str, data: object) -> int:
            async with http.post(f"{fake.url}/cgi-bin/media/upload", params={"access_token": token, "type": kind},
                                 data=data) as r:
                return int((await r.json())["errcode"])

        def form(name: str, size: int) -> aiohttp.FormData:
            f = aiohttp.FormData()
            f.add_field(name, b"x" * size, filename="a.json", content_type="application/json")
            return f

        assert await upload("file", form("media", FILE_MAX_BYTES + 1)) == 40006
        assert await upload("file", form("media", 5)) == 40006
        assert await upload("file", form("file", 100)) == 44001
        assert await upload("file", b'{"media": "not multipart"}') == 44001
        assert await upload("doc", form("media", 100)) == 40004
        assert await upload("file", form("media", FILE_MAX_BYTES)) == 0
    assert [v[1] for v in fake.violations] == [40006, 40006, 44001, 44001, 40004]
    fake.violations.clear()
    await bot.resident(RES, "你好")
    with pytest.raises(Exception, match="40007"):
        await api.call("message/send", {"touser": "v-liming", "agentid": fake.agent_id, "msgtype": "file",
                                        "file": {"media_id": "media-unknown"}})
    assert fake.violations == [("message/send", 40007, "invalid media_id")]
    fake.violations.clear()


async def test_a_file_wecom_could_not_deliver_comes_again(bot: WecomBot) -> None:
    """msg_send_fail for the file (the session had expired): the file alone is held and, when the resident
    writes, uploaded again (a media_id lasts 3 days) and sent — the caption is not repeated."""
    fake = bot.fake
    await bot.resident(RES, "你好")
    await bot.resident(RES, "导出我的数据")
    file_msgid = fake.kf_out[RES][-1]["msgid"]
    await fake.kf_event(RES, {"event_type": "msg_send_fail", "fail_msgid": file_msgid, "fail_type": 4})
    await bot.settle()
    assert len(fake.kf_files(RES)) == 1
    await bot.advance(days=4)  # the first upload has expired by now
    await bot.resident(RES, "在吗")
    files = fake.kf_files(RES)
    assert len(files) == 2 and files[1] == files[0] and fake.uploads == 2
    assert sum("JSON" in t for t in fake.kf_texts(RES)) == 1
