"""Concurrency, duplicates, restarts and bad input: nothing lost, nothing doubled, nothing crashes."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from bot.clock import Clock
from storage.models import Claim, HelpRequest
from tests.conftest import Backend
from tests.simclient import CROWD, MONDAY_10AM_UTC, Sim, add_crowd, count_rows, demo_config


async def test_fifty_volunteers_press_at_once_one_wins(backend: Backend) -> None:
    cfg = demo_config(backend.database_url, backend.redis_url, add_crowd)
    sim = await Sim(cfg, Clock(frozen_at=MONDAY_10AM_UTC), redis_prefix=backend.redis_prefix).start()
    try:
        number = await sim.ask_for_help("r-race", "为老服务", "陪同就医", "幸福社区")
        message_id, data = await sim.find_button("grp-xingfu-elderly", "接单", contains=number)
        answers = await asyncio.gather(*(sim.press_data("grp-xingfu-elderly", v, message_id, data) for v in CROWD))
        winners = [a for a in answers if a and "接单成功" in a]
        losers = [a for a in answers if a and "已经有人接了" in a]
        assert len(winners) == 1 and len(losers) == 49, answers
        winner = CROWD[answers.index(winners[0])]
        card = [m for m in await sim.messages("grp-xingfu-elderly") if m["message_id"] == message_id][0]
        assert "已由" in card["text"] and card["buttons"] == []
        assert "13812345678" in await sim.last(winner)
        seen = 0
        for v in CROWD:
            seen += sum("13812345678" in t for t in await sim.bot_texts(v))
        assert seen == 1
        assert await count_rows(backend.database_url, Claim) == 1
    finally:
        await sim.close()


async def test_same_event_twice_creates_one_request(sim: Sim) -> None:
    resident = "r-dup"
    await sim.say(resident, "你好")
    await sim.accept_privacy(resident)
    for label in ("为老服务", "送餐助餐", "幸福社区", "我自己", "越快越好"):
        await sim.press(resident, resident, label)
    await sim.say(resident, "和平路3号")
    await sim.say(resident, "13912345678")
    await sim.say(resident, "需要送午饭")
    message_id, data = await sim.find_button(resident, "确认提交")
    first = await sim.post("/sim/api/press", {"chat_id": resident, "user_id": resident, "message_id": message_id,
                                              "data": data, "event_id": "evt-42"})
    again = await sim.post("/sim/api/press", {"chat_id": resident, "user_id": resident, "message_id": message_id,
                                              "data": data, "event_id": "evt-42"})
    assert first["duplicate"] is False and again["duplicate"] is True
    assert await count_rows(sim.cfg.storage.database_url, HelpRequest) == 1
    assert sum("已提交" in t for t in await sim.bot_texts(resident)) == 1
    # a typed message delivered twice is handled once
    await sim.send(resident, resident, "我的求助", event_id="evt-43")
    await sim.send(resident, resident, "我的求助", event_id="evt-43")
    assert sum("您的求助" in t for t in await sim.bot_texts(resident)) == 1


async def test_duplicates_delivered_concurrently_are_handled_once(sim: Sim) -> None:
    resident = "r-dup2"
    await sim.say(resident, "你好")
    await sim.accept_privacy(resident)
    replies = await asyncio.gather(*(sim.send(resident, resident, "我的求助", event_id="evt-same")
                                     for _ in range(5)))
    assert sum(not r["duplicate"] for r in replies) == 1
    assert sum("还没有提交过" in t for t in await sim.bot_texts(resident)) == 1


async def test_restart_between_intake_steps_loses_nothing(sim: Sim) -> None:
    resident = "r-restart"
    await sim.say(resident, "你好")
    await sim.accept_privacy(resident)
    await sim.press(resident, resident, "为老服务")
    await sim.press(resident, resident, "陪同就医")
    await sim.restart()
    await sim.press(resident, resident, "幸福社区")
    await sim.press(resident, resident, "家里人")
    await sim.press(resident, resident, "选日期")
    await sim.say(resident, "明天下午3点")
    await sim.restart()
    await sim.say(resident, "幸福路8号")
    await sim.say(resident, "13812345678")
    await sim.say(resident, "去医院拿药")
    summary = await sim.last(resident)
    assert "陪同就医" in summary and "幸福社区" in summary and "15:00" in summary and "幸福路8号" in summary
    await sim.press(resident, resident, "确认提交")
    assert "已提交" in await sim.last(resident)


async def test_restart_between_claim_and_finish_loses_nothing(sim: Sim) -> None:
    number = await sim.ask_for_help("r-crash", "为小服务", "课业辅导", "幸福社区")
    await sim.press("grp-xingfu-children", "v-wangfang", "接单")
    await sim.press("v-wangfang", "v-wangfang", "出发")
    await sim.restart()
    await sim.advance(120)
    assert await sim.press("v-wangfang", "v-wangfang", "完成服务")
    assert "2 小时" in await sim.last("v-wangfang")
    assert "打分" in await sim.last("r-crash")
    card = [m for m in await sim.messages("grp-xingfu-children") if number in m["text"]][-1]
    assert "已完成" in card["text"]


async def test_timers_survive_a_restart(sim: Sim) -> None:
    await sim.ask_for_help("r-timer", "为老服务", "送餐助餐", "幸福社区")
    await sim.restart()
    await sim.advance(31)
    assert "还没有人接" in await sim.last("grp-xingfu-elderly")


async def test_bad_callers_get_4xx_and_the_bot_keeps_working(sim: Sim) -> None:
    assert sim.http is not None
    async with sim.http.post(sim.base + "/sim/api/send", data=b"{not json") as r:
        assert r.status == 400 and "JSON" in (await r.json())["error"]
    await sim.post("/sim/api/send", [1, 2], expect=400)
    await sim.post("/sim/api/send", {"chat_id": "r-x", "user_id": "r-x"}, expect=400)
    await sim.post("/sim/api/send", {"chat_id": "r-x", "user_id": "r-x", "text": 5}, expect=400)
    await sim.post("/sim/api/send", {"chat_id": "r-x", "user_id": "r-x", "text": "x" * 5000}, expect=400)
    await sim.post("/sim/api/send", {"chat_id": "grp-nope", "user_id": "r-x", "text": "hi"}, expect=400)
    await sim.post("/sim/api/send", {"chat_id": "r-y", "user_id": "r-x", "text": "hi"}, expect=400)
    await sim.post("/sim/api/press", {"chat_id": "r-x", "user_id": "r-x", "message_id": "99999", "data": "v1:claim:1"},
                   expect=400)
    await sim.post("/sim/api/press", {"chat_id": "r-x", "user_id": "r-x", "message_id": "abc", "data": "x"}, expect=400)
    await sim.post("/sim/api/clock", {"advance_minutes": -5}, expect=400)
    async with sim.http.post(sim.base + "/sim/api/send", data=b"x" * (2 * 1024 * 1024),
                             headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
    # still alive and answering
    number = await sim.ask_for_help("r-after", "为老服务", "送餐助餐", "幸福社区")
    assert number


async def test_stale_and_foreign_button_data_gets_a_clear_answer(sim: Sim) -> None:
    await sim.ask_for_help("r-stale", "为老服务", "送餐助餐", "幸福社区")
    message_id, _ = await sim.find_button("grp-xingfu-elderly", "接单")
    for data in ("garbage", "v0:claim:1", "v1:claim:999999", "v1:claim:abc", "v1:unknown:1", "v1:rate:1:9"):
        answer = await sim.press_data("grp-xingfu-elderly", "v-liming", message_id, data)
        assert answer and "过期" in answer or answer == "这不是您的单子。", (data, answer)


async def test_unreadable_input_gets_kind_hints(sim: Sim) -> None:
    resident = "r-hint"
    await sim.say(resident, "你好")
    await sim.accept_privacy(resident)
    await sim.say(resident, "随便什么")
    assert "请点下面的按钮" in await sim.last(resident)
    await sim.say(resident, "1")  # the first button's number
    assert "哪项服务" in await sim.last(resident)
    await sim.say(resident, "陪同就医")  # the button's words
    assert "哪个社区" in await sim.last(resident)
    await sim.say(resident, "取消")
    assert "已取消" in await sim.last(resident)


async def test_directory_lists_people_and_groups(sim: Sim) -> None:
    assert sim.http is not None
    async with sim.http.get(sim.base + "/sim/api/directory") as r:
        directory = await r.json()
    people = {p["user_id"]: p for p in directory["people"]}
    assert "coordinator" in people["c-zhao"]["roles"]
    assert "t-xingfu-elderly" in people["v-liming"]["teams"]
    assert {"chat_id": "grp-xingfu-elderly", "team_id": "t-xingfu-elderly",
            "team_name": people and next(g["team_name"] for g in directory["groups"]
                                         if g["team_id"] == "t-xingfu-elderly")} in directory["groups"]
    async with sim.http.get(sim.base + "/") as r:
        assert r.status == 200 and "sim.js" in await r.text()


async def test_many_residents_at_once(sim: Sim) -> None:
    async def one(i: int) -> str:
        return await sim.ask_for_help(f"r-many{i}", "为老服务", "送餐助餐", "幸福社区")

    numbers = await asyncio.gather(*(one(i) for i in range(8)))
    assert len(set(numbers)) == 8
    cards = await sim.bot_texts("grp-xingfu-elderly")
    assert all(any(n in c for c in cards) for n in numbers)



async def test_background_loops_fire_timers_without_being_asked(backend: Backend) -> None:
    """The scheduler's own loop (not the simulator's clock endpoint) fires due timers and delivers."""
    def fast_tick(data: dict[str, Any]) -> None:
        data["timings"]["tick_seconds"] = 0.05

    sim = await Sim(demo_config(backend.database_url, backend.redis_url, fast_tick),
                    Clock(frozen_at=MONDAY_10AM_UTC), redis_prefix=backend.redis_prefix).start()
    try:
        await sim.ask_for_help("r-bg", "为老服务", "送餐助餐", "幸福社区")
        sim.clock.advance(timedelta(minutes=31))  # time passes; nobody calls the clock API
        for _ in range(200):
            if "还没有人接" in await sim.last("grp-xingfu-elderly"):
                break
            await asyncio.sleep(0.05)
        assert "还没有人接" in await sim.last("grp-xingfu-elderly")
    finally:
        await sim.close()
