"""The Telegram adapter against the fake Bot API: transports and the webhook secret, duplicates and
restarts, stale buttons, contact and location, deep links, edits, two workers, logs."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.app import App
from flows.i18n import t
from storage.channel_repo import live_lease_holders
from storage.db import utcnow
from storage.models import ProcessedEvent
from tests.conftest import Backend
from tests.fakes.telegram import fixture
from tests.fakes.telegram_sim import SECRET, TOKEN, Factory, TgSim, bots

GROUP, TEAM = "grp-xingfu-elderly", "t-xingfu-elderly"


@pytest.fixture
async def make(backend: Backend) -> AsyncIterator[Factory]:
    """Start bots on this backend (closed at the end); c-zhao is linked in each."""
    async with bots(backend) as start:
        yield start


async def count(sim: TgSim, model: object) -> int:
    """Rows in a table of the bot's database."""
    assert sim.app is not None
    async with sim.app.db.transaction() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_transport_registers_itself(make: Factory, mode: str) -> None:
    tg = await make(mode)
    assert tg.fake is not None
    if mode == "webhook":
        assert tg.fake.webhook == {"url": "https://bot.example.org/telegram/webhook", "secret_token": SECRET,
                                   "allowed_updates": ["message", "callback_query", "my_chat_member"]}
    else:
        assert tg.fake.webhook is None and tg.fake.count("deleteWebhook") == 1
    await tg.stop()
    assert tg.fake.webhook is None  # webhook mode deletes it on stop


async def test_only_the_last_webhook_worker_deletes_the_webhook(make: Factory) -> None:
    tg = await make("webhook")
    assert tg.fake is not None and tg.app is not None
    second = App(tg.cfg, clock=tg.clock, redis_prefix=tg.redis_prefix)  # another worker on the same database
    await second.start()
    for _ in range(250):  # until both workers have announced themselves
        async with tg.app.db.transaction() as s:
            if len(await live_lease_holders(s, "telegram:webhook:", utcnow())) == 2:
                break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the webhook workers never took their leases")
    await tg.stop()
    assert tg.fake.webhook is not None  # the other worker still receives updates through it
    await second.stop()
    assert tg.fake.webhook is None  # the last one out deletes it


async def test_webhook_without_the_secret_is_refused(make: Factory) -> None:
    tg = await make("webhook")
    assert tg.fake is not None
    before = await count(tg, ProcessedEvent)
    for secret in (None, "wrong-secret", SECRET + "x", ""):
        update = tg.text_update("r-intruder", "r-intruder", "你好")
        assert await tg.fake.deliver(update, secret=secret) == 401
    await tg.settle_all()
    assert await count(tg, ProcessedEvent) == before
    assert await tg.bot_texts("r-intruder") == []
    # bad bodies with the right secret: 400, nothing happens, the bot keeps working
    assert tg.http is not None
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for raw in (b"{not json", b'{"update_id": 1, "message": "\xff\xfe"}'):  # not JSON; not UTF-8
        async with tg.http.post(tg.base + "/telegram/webhook", data=raw, headers=headers) as r:
            assert r.status == 400, raw
    broken = tg.text_update("r-intruder", "r-intruder", "你好")
    broken["message"]["date"] = 10 ** 20  # a timestamp no clock can hold
    for body in (None, [], "x", {}, broken):
        async with tg.http.post(tg.base + "/telegram/webhook", json=body, headers=headers) as r:
            assert r.status == 400, body
    await tg.say("r-intruder", "你好")
    await tg.accept_privacy("r-intruder")
    assert "哪方面的帮助" in await tg.last("r-intruder")


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_an_update_delivered_twice_has_one_effect(make: Factory, mode: str) -> None:
    tg = await make(mode)
    assert tg.fake is not None
    await tg.say("r-dup", "你好")
    await tg.accept_privacy("r-dup")
    texts = await tg.bot_texts("r-dup")
    message_id, data = await tg.find_button("r-dup", "为老服务")
    update, qid = tg.press_update("r-dup", "r-dup", message_id, data)
    await tg.feed(update)
    after_press = await tg.bot_texts("r-dup")
    assert len(after_press) == len(texts) + 1
    if mode == "webhook":  # Telegram retries a webhook call it thinks failed
        assert await tg.fake.deliver(update) == 200
    else:  # an offset replay: the same update served again
        tg.fake.enqueue(update)
        await tg.fake.wait_confirmed(update["update_id"])
    await tg.settle_all()
    assert await tg.bot_texts("r-dup") == after_press


async def test_restart_resumes_from_the_saved_offset(make: Factory) -> None:
    tg = await make("polling")
    assert tg.fake is not None
    await tg.say("r-restart", "你好")
    await tg.accept_privacy("r-restart")
    last_id = tg.fake.confirmed
    await tg.restart()
    await tg.say("r-restart", "1")
    offsets = [c.params.get("offset") for c in tg.fake.calls if c.method == "getUpdates"]
    restart_at = max(i for i, c in enumerate(tg.fake.calls) if c.method == "getMe")
    first_after = next(c for c in tg.fake.calls[restart_at:] if c.method == "getUpdates")
    assert first_after.params.get("offset") == last_id, offsets
    assert "需要哪项服务" in await tg.last("r-restart")


async def test_stale_and_foreign_button_data_get_a_clear_answer(make: Factory) -> None:
    tg = await make("webhook")
    await tg.say("r-stale", "你好")
    await tg.accept_privacy("r-stale")
    message_id, _ = await tg.find_button("r-stale", "为老服务")
    stale = t("zh_CN", "press.stale")
    for data in ("v0:c:1", "hello from another bot", "v1:c:999999", "v1:zz:1:2"):
        assert await tg.press_data("r-stale", "r-stale", message_id, data) == stale
    # a press on a message the bot cannot see any more (no message in the query) is answered too
    assert tg.fake is not None
    update, qid = tg.press_update("r-stale", "r-stale", message_id, "v1:c:1")
    del update["callback_query"]["message"]
    update["callback_query"]["inline_message_id"] = "AAAAAgAAAAAAAAAA"
    await tg.feed(update)
    assert tg.fake.answers[qid] == stale


async def test_contact_and_location_fill_the_form(make: Factory) -> None:
    tg = await make("polling")
    assert tg.fake is not None
    r = "r-share"
    await tg.say(r, "你好")
    await tg.accept_privacy(r)
    for label in ("为老服务", "打扫卫生", "幸福社区", "我自己", "今天"):
        await tg.press(r, r, label)
    # the address by sharing a location (recorded payload)
    loc = fixture("location")["message"]["location"]
    await tg.feed(tg.message_update(r, r, "location", location=loc))
    ask_phone = tg.fake.chats[tg.uid(r)][-1]
    assert "电话" in ask_phone.text
    keyboard = ask_phone.reply_markup or {}
    assert keyboard["keyboard"][0][0] == {"text": t("zh_CN", "intake.share_phone"), "request_contact": True}
    # the phone by the share-contact key (Telegram sends it without '+')
    contact = {**fixture("contact")["message"]["contact"], "user_id": tg.uid(r)}
    await tg.feed(tg.message_update(r, r, "contact", contact=contact))
    ask_description = tg.fake.chats[tg.uid(r)][-1]
    assert ask_description.reply_markup == {"remove_keyboard": True}  # the share key goes away
    await tg.say(r, "厨房需要打扫")
    summary = await tg.last(r)
    assert "📍31.23042,121.47370" in summary and "138****5678" in summary
    await tg.press(r, r, "确认提交")
    assert "已提交" in await tg.last(r)


async def test_logs_never_show_the_token(make: Factory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tg = await make("webhook")
    await tg.say("r-log", "你好")
    await tg.accept_privacy("r-log")
    await tg.press("r-log", "r-log", "为老服务")
    # nor what residents tell the bot, also when the group and a claimer's private chat fail
    await tg.link("v-liming")
    await tg.bind(GROUP, TEAM)
    await tg.ask_for_help("r-log2", "为老服务", "陪同就医", "幸福社区")
    assert tg.fake is not None
    tg.fake.blocked_users.add(tg.uid("v-liming"))
    await tg.press(GROUP, "v-liming", "接单")
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text
    assert SECRET not in caplog.text
    ours = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.levelno >= logging.INFO)
    for private in ("13812345678", "幸福路12号", "腿脚不便", "张阿姨"):  # (DEBUG has the SQL drivers' parameters)
        assert private not in ours, private


async def test_a_station_qr_code_link_preselects_the_station(make: Factory) -> None:
    tg = await make("polling")
    await tg.say("r-qr", "/start s-guangming")  # t.me/<bot>?start=s-guangming
    assert await tg.accept_privacy("r-qr")  # the station survives the privacy notice
    await tg.press("r-qr", "r-qr", "为老服务")
    await tg.press("r-qr", "r-qr", "打扫卫生")
    assert "为谁申请" in await tg.last("r-qr")  # the community question was skipped


async def test_edits_that_change_nothing_or_hit_a_gone_message(make: Factory) -> None:
    from bot.channels.base import PermanentSendError
    from flows.types import Button, Message

    tg = await make("polling")
    assert tg.app is not None and tg.fake is not None
    await tg.say("r-edit", "你好")
    await tg.accept_privacy("r-edit")
    channel = tg.app.channels["telegram"]
    chat = str(tg.uid("r-edit"))
    pause = timedelta(seconds=5)  # one chat gets about a message a second
    tg.app.clock.advance(pause)
    mid = await channel.send(chat, Message("第一版", ((Button("按钮", "v1:x:1"),),)))
    await channel.edit(chat, mid, Message("第二版"))
    await channel.edit(chat, mid, Message("第二版"))  # "message is not modified": fine
    tg.app.clock.advance(pause)
    shown = tg.fake.chats[tg.uid("r-edit")][-1]
    assert shown.text == "第二版" and shown.reply_markup is None and shown.versions == ["第一版", "第二版"]
    with pytest.raises(PermanentSendError):
        await channel.edit(chat, "99999", Message("没有这条"))


async def test_two_workers_poll_one_at_a_time(make: Factory) -> None:
    from bot.app import App

    tg = await make("polling")
    assert tg.fake is not None and tg.app is not None
    second = App(tg.cfg, clock=tg.clock, redis_prefix=tg.redis_prefix)
    await second.start()
    await tg.say("r-two", "你好")
    await tg.accept_privacy("r-two")
    await tg.say("r-two", "1")
    assert "需要哪项服务" in await tg.last("r-two")
    assert not [c for c in tg.fake.calls if c.status == 409]  # never two getUpdates at once
    await tg.stop()  # the polling worker goes away: the other takes over (its lease check is every 5 s)
    tg.app, tg.base = second, f"http://127.0.0.1:{second.port}"
    await tg.say("r-two", "1")
    assert "社区" in await tg.last("r-two")
    assert len([c for c in tg.fake.calls if c.status == 409]) <= 1  # at most the stopped worker's last poll
    texts = await tg.bot_texts("r-two")  # nothing handled twice
    assert sum("需要哪项服务" in x for x in texts) == 1 and sum("哪个社区" in x for x in texts) == 1
