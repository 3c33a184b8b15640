"""Telegram's limits: 20 messages a minute per group under a burst, 429 retry_after obeyed, 5xx retried,
texts over 4096 characters split and never cut."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.app import App
from bot.channels.base import RetryLater
from bot.channels.telegram.inbound import contact_phone, strip_command
from bot.channels.telegram.outbound import split_text, utf16_len
from bot.inbox import Inbox
from flows.types import Button, Message
from handlers import effects
from handlers.context import Ctx
from storage import repo
from tests.conftest import Backend
from tests.fakes.telegram import Fault
from tests.fakes.telegram_sim import TgSim

GROUP, TEAM = "grp-xingfu-elderly", "t-xingfu-elderly"


@pytest.fixture
async def tg(backend: Backend) -> AsyncIterator[TgSim]:
    """A polling bot whose elderly team's group is bound; the test moves time itself."""
    sim = await TgSim.create(backend, "polling")
    try:
        await sim.bootstrap("c-zhao")
        await sim.bind(GROUP, TEAM)
        sim.auto_wait = False
        yield sim
    finally:
        await sim.close()


async def open_requests(tg: TgSim, n: int) -> list[str]:
    """n requests dispatched to the team in one go (no intake conversations); their numbers."""
    assert tg.app is not None
    async with tg.app.db.transaction() as s:
        ctx = Ctx(s=s, cfg=tg.app.cfg, catalog=tg.app.cfg.catalog(), now=tg.app.clock.now())
        resident = await repo.create_resident(s, "telegram", "5999000001", "5999000001", "张阿姨", ctx.now)
        numbers = []
        for _ in range(n):
            number = await repo.next_number(s, ctx.local().date())
            req = await repo.add_request(
                s, number=number, resident_id=resident.id, channel="telegram", chat_id="5999000001",
                locale="zh_CN", category="elderly", service="meal", station_id="s-xingfu", for_whom="self",
                when_kind="asap", when_at=ctx.now, when_text="尽快", address="幸福路12号", phone="13812345678",
                description="需要送餐", urgent=True, status="open", team_id=TEAM, escalation_level=0,
                created_at=ctx.now)
            await effects.dispatch(ctx, req, TEAM, "dispatch")
            numbers.append(number)
        await ctx.flush_outbox()  # the test owns the transaction, as the dispatcher does for an event
    tg.app.outbox.kick()
    return numbers


def cards(tg: TgSim, numbers: list[str]) -> list[str]:
    """The request numbers of the cards in the group, in the order they arrived."""
    assert tg.fake is not None
    wanted = set(numbers)
    return [n for m in tg.fake.chats[tg.uid(GROUP)] for n in [m.text.split("编号 ")[-1].split()[0]] if n in wanted]


async def run_until(tg: TgSim, done: object, steps: int = 1500, also: App | None = None) -> None:
    """Deliver (with a second worker `also`, both at once), and move the clock to the next due row,
    until `done()` holds."""
    assert tg.app is not None
    for _ in range(steps):
        await asyncio.gather(tg.app.settle(), *([also.settle()] if also else []))
        if done():  # type: ignore[operator]
            return
        wait = await tg.next_due()
        assert wait is not None, "nothing left to deliver"
        tg.app.clock.advance(timedelta(seconds=max(wait, 0.001)))
    raise AssertionError("not delivered in time")


async def test_a_burst_of_200_cards_keeps_the_group_limit(tg: TgSim, backend: Backend) -> None:
    assert tg.fake is not None and tg.app is not None
    # with Redis, two workers deliver at once and share the limiter (without it one worker is the setup)
    second = App(tg.cfg, clock=tg.clock, redis_prefix=tg.redis_prefix) if backend.redis_url else None
    if second:
        await second.start()
    numbers = await open_requests(tg, 200)
    start = tg.app.clock.now()
    try:
        await run_until(tg, lambda: len(cards(tg, numbers)) >= 200, also=second)
    finally:
        if second:
            await second.stop()
    assert cards(tg, numbers) == numbers  # all of them, once each, in order
    gid = tg.uid(GROUP)
    assert tg.fake.max_in_window(gid, 60, ("sendMessage", "editMessageText", "editMessageReplyMarkup")) <= 20
    assert tg.fake.returned_429 == 0  # the bot never made Telegram say "too many"
    assert tg.app.clock.now() - start >= timedelta(minutes=9)  # 200 at 20 a minute


async def test_429_retry_after_is_obeyed_and_nothing_is_dropped(tg: TgSim, backend: Backend) -> None:
    assert tg.fake is not None and tg.app is not None
    gid = tg.uid(GROUP)
    tg.fake.faults.append(Fault("sendMessage", 429, chat_id=gid, retry_after=7))
    numbers = await open_requests(tg, 3)
    await tg.app.settle()
    assert cards(tg, numbers) == [] and tg.fake.returned_429 == 1
    blocked_at = tg.app.clock.now()
    assert 6.9 <= (await tg.next_due() or 0) <= 7.1
    tg.app.clock.advance(timedelta(seconds=3))
    await tg.app.settle()  # still waiting: nothing sent, no second 429
    assert cards(tg, numbers) == []
    # any other sender to that chat waits too (another outbox lane; with Redis, another worker)
    second = App(tg.cfg, clock=tg.clock, redis_prefix=tg.redis_prefix) if backend.redis_url else None
    if second:
        await second.start()
    try:
        with pytest.raises(RetryLater) as held:
            await (second or tg.app).channels["telegram"].send(str(gid), Message("别的消息"))
        assert 3.9 <= held.value.delay <= 4.1 and tg.fake.returned_429 == 1  # held back, Telegram not asked
    finally:
        if second:
            await second.stop()
    await run_until(tg, lambda: len(cards(tg, numbers)) == 3)
    assert cards(tg, numbers) == numbers
    assert tg.fake.flood_429 == 0 and tg.fake.returned_429 == 1
    refused = next(i for i, c in enumerate(tg.fake.calls) if c.status == 429)
    after = [c for c in tg.fake.calls[refused + 1:] if c.params.get("chat_id") == gid]
    assert after and after[0].at >= blocked_at + timedelta(seconds=7)  # not a single call before retry_after


async def test_server_errors_are_retried_with_backoff(tg: TgSim) -> None:
    assert tg.fake is not None and tg.app is not None
    gid = tg.uid(GROUP)
    tg.fake.faults.append(Fault("sendMessage", 502, chat_id=gid, times=1))
    tg.fake.faults.append(Fault("sendMessage", 500, chat_id=gid, times=1))
    numbers = await open_requests(tg, 2)
    await run_until(tg, lambda: len(cards(tg, numbers)) == 2)
    assert cards(tg, numbers) == numbers
    failed = [c.status for c in tg.fake.calls if c.method == "sendMessage" and c.status >= 500]
    assert failed == [502, 500]


async def test_long_texts_arrive_split_never_cut(tg: TgSim) -> None:
    assert tg.fake is not None and tg.app is not None
    await tg.say("r-long", "你好")
    await tg.accept_privacy("r-long")
    before = len(tg.fake.chats[tg.uid("r-long")])
    text = "\n".join(f"第{i}行：志愿服务记录 ⭐ 🙂 " + "很长的说明" * 20 for i in range(200))  # ~23,000 units
    buttons = ((Button("好的", "v1:x:1"),),)
    async with tg.app.db.transaction() as s:
        ctx = Ctx(s=s, cfg=tg.app.cfg, catalog=tg.app.cfg.catalog(), now=tg.app.clock.now())
        await ctx.say("telegram", str(tg.uid("r-long")), Message(text, buttons))
        await ctx.flush_outbox()
    await run_until(tg, lambda: len(tg.fake.chats[tg.uid("r-long")]) > before + 1
                    and tg.fake.chats[tg.uid("r-long")][-1].reply_markup is not None)
    parts = tg.fake.chats[tg.uid("r-long")][before:]
    assert len(parts) == len(split_text(text)) >= 6  # more parts than the per-chat burst: a pause between
    assert "\n".join(p.text for p in parts) == text
    assert all(utf16_len(p.text) <= 4096 for p in parts)
    assert [p.reply_markup is not None for p in parts] == [False] * (len(parts) - 1) + [True]
    assert tg.fake.returned_429 == 0


def test_split_text_keeps_every_character() -> None:
    assert split_text("短消息") == ["短消息"]
    emoji = "😀" * 5000  # 10,000 UTF-16 units, no newline: split between characters
    parts = split_text(emoji)
    assert "".join(parts) == emoji and all(utf16_len(p) <= 4096 for p in parts) and len(parts) == 3
    lines = "\n".join(["x" * 100] * 100)
    parts = split_text(lines)
    assert "\n".join(parts) == lines and all(len(p) <= 4096 and not p.startswith("\n") for p in parts)


def test_commands_and_contacts_are_normalised() -> None:
    assert strip_command("/bind@Wuwei_Test_Bot t-1", "wuwei_test_bot") == "/bind t-1"
    assert strip_command("/hours@wuwei_test_bot", "wuwei_test_bot") == "/hours"
    assert strip_command("/bind@other_bot t-1", "wuwei_test_bot") is None
    assert strip_command("mail me@home", "wuwei_test_bot") == "mail me@home"
    assert contact_phone("8613812345678") == "+8613812345678"
    assert contact_phone("+86 138 1234 5678") == "+86 138 1234 5678"


async def test_the_fake_refuses_what_telegram_refuses() -> None:
    from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
    from telegram.error import BadRequest, Conflict, InvalidToken

    from bot.clock import Clock
    from tests.fakes.telegram import FakeTelegram
    from tests.fakes.telegram_sim import TOKEN

    fake = await FakeTelegram(TOKEN, Clock()).start()
    bot = Bot(TOKEN, base_url=f"{fake.base_url}/bot")
    stranger = Bot("123:wrong", base_url=f"{fake.base_url}/bot")
    try:
        fake.open_chat({"id": 42, "first_name": "x", "type": "private"})
        assert (await bot.send_message(42, "a" * 4096)).message_id == 1
        for text in ("", "a" * 4097, "😀" * 2049):
            with pytest.raises(BadRequest):
                await bot.send_message(42, text)
        with pytest.raises(BadRequest):
            await bot.send_message(42, "x", reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("b", callback_data="d" * 65)]]))
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await bot.send_message(43, "x")
        with pytest.raises(BadRequest, match="(?i)query"):
            await bot.answer_callback_query("nope", text="hi")
        with pytest.raises(BadRequest, match="(?i)https"):
            await bot.set_webhook("http://insecure.example.org/hook")
        await bot.set_webhook("https://bot.example.org/hook", secret_token="s3cret")
        with pytest.raises(Conflict):
            await bot.get_updates()
        with pytest.raises(InvalidToken):
            await stranger.get_me()
        assert [c.status for c in fake.calls].count(200) == 2
    finally:
        await bot.shutdown()
        await stranger.shutdown()
        await fake.close()


async def test_a_group_that_lost_the_bot_is_reported_to_the_coordinators(tg: TgSim) -> None:
    """The bot was removed from the bound group: the card fails for good and the coordinators hear of it."""
    assert tg.fake is not None and tg.app is not None
    tg.fake.faults.append(Fault("sendMessage", 403, chat_id=tg.uid(GROUP)))
    [number] = await open_requests(tg, 1)
    await tg.app.settle()  # the card fails for good ...
    await tg.app.settle()  # ... and the alert it caused goes out
    assert cards(tg, [number]) == []
    alert = await tg.last("c-zhao")
    assert number in alert and "幸福社区为老服务队" in alert and "telegram" in alert


async def test_rate_limits_can_be_configured_off() -> None:
    """channels.telegram.rate_limits: false sends without asking the limiter (a local Bot API has no limits)."""
    from bot.channels.telegram import TelegramChannel
    from bot.clock import Clock
    from bot.config_channels import TelegramConfig
    from bot.ratelimit import Rule

    class AlwaysWait:
        asked = 0

        async def reserve(self, rules: list[Rule]) -> float:
            self.asked += 1
            return 3.0

        async def block(self, key: str, seconds: float) -> None:
            """Not used here."""

    for rate_limits in (True, False):
        limiter = AlwaysWait()
        cfg = TelegramConfig(enabled=True, token="1:x", rate_limits=rate_limits)
        channel = TelegramChannel(cfg, None, Clock(), limiter, "zh_CN", Inbox(None))  # type: ignore[arg-type]
        if rate_limits:
            with pytest.raises(RetryLater):
                await channel._reserve("42")
        else:
            await channel._reserve("42")
        assert limiter.asked == (1 if rate_limits else 0)
