"""WeCom retries and races: every callback delivered 3 times has one effect; 20 clicks, one winner."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Backend
from tests.fakes.wecom import card_text
from tests.fakes.wecom_bot import WecomBot
from tests.simclient import CROWD, add_crowd
from tests.test_wecom_e2e import ask_for_help, cards_of

RES = "wmRACE0001"


@pytest.fixture
async def crowd_bot(backend: Backend) -> AsyncIterator[WecomBot]:
    """The bot on WeCom with 50 more volunteers in 幸福社区's elderly team."""
    b = await WecomBot.create(backend.database_url, backend.redis_url, backend.redis_prefix, extra=add_crowd)
    try:
        yield b
        assert b.fake.violations == [] and b.fake.dropped == []
    finally:
        await b.close()


async def test_every_callback_three_times_has_one_effect(crowd_bot: WecomBot) -> None:
    bot, fake = crowd_bot, crowd_bot.fake
    await fake.enter_session(RES, "s-xingfu", times=3)
    await bot.settle()
    assert len(fake.kf_texts(RES)) == 1  # one welcome
    await fake.resident_says(RES, "你好", times=3)
    await bot.settle()
    assert len(fake.kf_texts(RES)) == 2  # the privacy notice, once
    await fake.resident_clicks(RES, "同意并继续", times=3)
    await bot.settle()
    assert len(fake.kf_texts(RES)) == 6  # thanks, greeting + menu and the press's answer, once
    await fake.resident_clicks(RES, "为老服务", times=3)
    await bot.settle()
    assert len(fake.kf_texts(RES)) == 7
    await fake.member_says("v-wangfang", "值班", times=3)
    await bot.settle()
    assert len(fake.texts("v-wangfang")) == 1
    await fake.member_says("c-zhao", "/linkcode v-liming", times=3)
    await bot.settle()
    assert len(fake.texts("c-zhao")) == 1


async def test_twenty_clicks_one_winner_every_copy_updated_once(crowd_bot: WecomBot) -> None:
    bot, fake = crowd_bot, crowd_bot.fake
    crowd = CROWD[:20]
    for volunteer in crowd:
        await fake.member_says(volunteer, "值班")
    await bot.settle()
    number = await ask_for_help(bot, RES)
    copies: dict[str, tuple[str, str]] = {}
    for volunteer in crowd:
        task_id = cards_of(bot, volunteer)[-1]
        key = next(b["key"] for b in fake.cards[task_id].card["button_list"] if b["text"] == "接单")
        copies[volunteer] = (task_id, key)
    clicks: list[Any] = [fake.click(v, *copies[v]) for v in crowd]
    await asyncio.gather(*clicks)
    await bot.settle()
    answers = {v: [m["text"] for m in fake.app_inbox[v] if m["kind"] == "text"] for v in crowd}
    winners = [v for v, texts in answers.items() if any("接单成功" in t for t in texts)]
    assert len(winners) == 1, answers
    assert all(any("已经有人接了" in t for t in texts) for v, texts in answers.items() if v not in winners)
    tasks = {task for task, _ in copies.values()}
    for task in tasks:  # one card to all, or one per member: either way each copy changed exactly once
        card = fake.cards[task]
        assert len(card.updates) == 1 and "已由" in card_text(card.card) and not card.card.get("button_list")
    assert number in card_text(fake.cards[cards_of(bot, winners[0])[-1]].card)  # the details card
