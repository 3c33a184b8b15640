"""Payloads in the shapes of WeCom's documentation, through the fake into the real adapter."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.models import WecomKfSession
from tests.conftest import Backend
from tests.fakes.wecom import epoch
from tests.fakes.wecom_bot import WecomBot

FIXTURES = Path(__file__).parent / "fixtures" / "wecom"
USER = "wmFIXTURE0001"


@pytest.fixture
async def bot(backend: Backend) -> AsyncIterator[WecomBot]:
    """The bot on WeCom."""
    b = await WecomBot.create(backend.database_url, backend.redis_url, backend.redis_prefix)
    try:
        yield b
    finally:
        await b.close()


async def test_documented_sync_page(bot: WecomBot) -> None:
    fake, now = bot.fake, bot.clock.now()
    raw = (FIXTURES / "sync_msg_page.json").read_text(encoding="utf-8")
    page = json.loads(raw.replace("OPEN_KFID", fake.open_kfid).replace("EXTERNAL_USERID", USER))
    for item in page["msg_list"]:
        item["send_time"] = epoch(now)
    fake.welcome_codes["WELCOME_CODE"] = (USER, now + timedelta(seconds=20))
    fake.kf_users[USER].last_in = now
    fake.kf_log.extend(page["msg_list"])
    await fake.notify_kf(times=2)
    await bot.settle()
    texts = fake.kf_texts(USER)
    assert "光明社区" in texts[0]  # the welcome, station from scene_param
    assert any("隐私说明" in t for t in texts) and any("文字" in t for t in texts)  # notice; the image answered
    assert not any("接待人员的消息" in t for t in texts)
    async with bot.app.db.transaction() as s:
        session = (await s.execute(select(WecomKfSession).where(WecomKfSession.external_userid == USER))).scalar_one()
    assert session.send_failures == 1 and session.sent_since_inbound <= 5  # fail_type 10 counted
    assert fake.violations == []


async def test_documented_app_callbacks(bot: WecomBot) -> None:
    fake = bot.fake
    for name, replace in (("app_text.xml", {}), ("app_template_card_event.xml",
                                                {"EVENT_KEY": "v1:claim:999", "TASK_ID": "r999-x",
                                                 "RESPONSE_CODE": "rcFIXTURE"})):
        xml = (FIXTURES / name).read_text(encoding="utf-8").strip()
        for key, value in {"CORP_ID": fake.corp_id, "AGENT_ID": str(fake.agent_id), **replace}.items():
            xml = xml.replace(key, value)
        body, params = fake.seal("app", xml)
        assert await fake.post_raw("app", body, params) == 200
        await bot.settle()
    texts = fake.texts("v-liming")
    assert "累计时长" in texts[0] and "过期" in texts[1]  # the stale click is answered, never an error


async def test_kf_callback_for_another_kf_account_is_ignored(bot: WecomBot) -> None:
    fake = bot.fake
    fake.kf_users[USER].last_in = bot.clock.now()
    fake.kf_log.append({"msgid": "msgOTHER1", "open_kfid": "wkOTHERACCOUNT1", "external_userid": USER,
                        "send_time": epoch(bot.clock.now()), "origin": 3, "msgtype": "text",
                        "text": {"content": "你好"}})
    token = fake.next_id("synctok")
    fake.sync_tokens.add(token)
    assert await fake.push("kf", {"ToUserName": fake.corp_id, "CreateTime": epoch(bot.clock.now()),
                                  "MsgType": "event", "Event": "kf_msg_or_event", "Token": token,
                                  "OpenKfId": "wkOTHERACCOUNT1"}) == [200]
    await bot.settle()
    assert fake.violations == []  # not even a kf/sync_msg for an account that is not ours
    assert fake.kf_texts(USER) == []


async def test_kf_managed_by_the_app_calls_back_on_the_app_url(bot: WecomBot) -> None:
    fake = bot.fake  # README: 微信客服 → 可调用接口的应用 = our app; WeCom then posts kf events to the app's URL
    assert await fake.resident_says(USER, "你好", via="app", times=3) == [200, 200, 200]
    await bot.settle()
    assert len(fake.kf_texts(USER)) == 1 and "隐私说明" in fake.kf_texts(USER)[-1]  # the privacy notice, once
    assert fake.violations == []
