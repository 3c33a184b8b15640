"""The smart robot together with the corp app (#4): a resident through 微信客服, the card in the team's
WeCom group through the robot, the click's winner gets the details privately in the corp app."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.app import App
from bot.clock import Clock
from tests.conftest import Backend
from tests.fakes.aibot import FakeAibot
from tests.fakes.wecom import FakeWecom
from tests.fakes.wecom_bot import WecomBot, wecom_mutator
from tests.simclient import MONDAY_10AM_UTC, demo_config
from tests.test_aibot import GROUP, TEAM, card_text, mention, new_card
from tests.test_wecom_e2e import RESIDENT, ask_for_help


@pytest.fixture
async def both(backend: Backend) -> AsyncIterator[tuple[WecomBot, FakeAibot]]:
    """The bot with the corp app, 微信客服 and the robot, each pointed at its fake (userid = person id)."""
    clock = Clock(frozen_at=MONDAY_10AM_UTC)
    wecom = await FakeWecom(clock).start()
    robot = await FakeAibot().start()

    def mutate(data: dict[str, Any]) -> None:
        wecom_mutator(wecom)(data)
        data["channels"]["wecom"]["aibot"] = {"enabled": True, "bot_id": robot.bot_id, "secret": robot.secret,
                                              "ws_url": robot.url}

    app = App(demo_config(backend.database_url, backend.redis_url, mutate), clock=clock,
              redis_prefix=backend.redis_prefix)
    await app.start()
    wecom.bot_url = f"http://127.0.0.1:{app.port}"
    bot = WecomBot(app, wecom, clock)
    try:
        await robot.wait_for(lambda: robot.live(), what="the robot to subscribe")
        yield bot, robot
        assert wecom.violations == [] and wecom.dropped == [] and robot.rejected == []
    finally:
        await bot.close()
        await robot.stop()


async def test_group_claim_with_details_in_the_corp_app(both: tuple[WecomBot, FakeAibot]) -> None:
    bot, robot = both
    assert "已绑定" in await mention(robot, f"/bind {TEAM}", userid=lambda pid: pid)
    number = await ask_for_help(bot)
    task_id, key = await new_card(robot, number)
    # the group has the card: the on-duty members get no 1:1 app card for it
    assert not any(number in t for t in bot.fake.texts("v-liming"))
    await robot.click(GROUP, "v-liming", task_id, key)
    await robot.wait_for(lambda: robot.updates, what="the card update")
    await bot.settle()
    assert "userids" not in robot.updates[0] and "已由 李明 接单" in card_text(robot.cards[task_id].card)
    details = bot.fake.texts("v-liming")[-1]
    assert "13812345678" in details and "幸福路12号3单元401" in details  # privately, in the corp app
    assert not any("13812345678" in t for t in bot.fake.texts("v-zhangwei"))
    assert "接单" in bot.fake.kf_texts(RESIDENT)[-1]
