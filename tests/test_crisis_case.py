"""A person in crisis is a case, not a message: hotlines at once, the form kept, a case for the on-duty
counsellors that climbs its chain, buttons that are race-safe, psychological requests never in a group.
End to end through the simulator, on SQLite and on PostgreSQL + Redis."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import Clock
from storage.db import Database
from storage.models import CaseEvent, CrisisCase, Person
from tests.conftest import Backend
from tests.simclient import MONDAY_10AM_UTC, Sim, demo_config

# (kind in CARE.md, words) — each must reach a counsellor as a case, whether first message or mid-form
PHRASINGS = [
    ("direct", "我不想活了"),
    ("hopelessness", "活着真没意思，我就是家里的累赘"),
    ("method", "我攒了好多安眠药"),
    ("there now", "我一个人站在江边，不想回去了"),
    ("farewell", "谢谢你们这些年的照顾，以后不用管我了"),
    ("after an act", "我已经割了手腕"),
    ("following", "老伴走了，我想去陪他"),
    ("third person", "我邻居说他想跳河"),
    ("euphemism", "我想一睡不醒"),
]
GROUPS = ["grp-county-psych", "grp-xingfu-elderly", "grp-heping-elderly"]


async def crisis_alerts(sim: Sim, chat: str) -> list[str]:
    return [t for t in await sim.bot_texts(chat) if "【紧急" in t]


async def cases(sim: Sim) -> list[CrisisCase]:
    db = Database(sim.cfg.storage.database_url)
    try:
        async with db.transaction() as s:
            return list((await s.execute(select(CrisisCase).order_by(CrisisCase.id))).scalars())
    finally:
        await db.dispose()


async def history(sim: Sim, case_id: int) -> list[tuple[str, str | None]]:
    db = Database(sim.cfg.storage.database_url)
    try:
        async with db.transaction() as s:
            q = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
            return [(e.action, e.actor_id) for e in (await s.execute(q)).scalars()]
    finally:
        await db.dispose()


async def phone_of(sim: Sim, person_id: str) -> str | None:
    db = Database(sim.cfg.storage.database_url)
    try:
        async with db.transaction() as s:
            person = await s.get(Person, person_id)
            return person.phone if person else None
    finally:
        await db.dispose()


async def start_form(sim: Sim, resident: str, community: str = "幸福社区") -> None:
    """A resident walks the form up to the address question."""
    await sim.say(resident, "你好", "王大爷")
    assert await sim.accept_privacy(resident)
    await sim.press(resident, resident, "为老服务")
    await sim.press(resident, resident, "送餐助餐")
    await sim.press(resident, resident, community)
    await sim.press(resident, resident, "我自己")
    await sim.press(resident, resident, "越快越好")
    assert "地址" in await sim.last(resident)


async def test_each_kind_at_the_first_message(sim: Sim) -> None:
    for i, (kind, words) in enumerate(PHRASINGS):
        resident = f"r-first{i}"
        await sim.say(resident, words)
        replies = await sim.bot_texts(resident)
        assert "12356" in replies[0] and "110" in replies[0], (kind, replies)
        assert "方便留个电话吗" in replies[1], (kind, replies)  # no phone known yet
        alert = (await crisis_alerts(sim, "v-sunli"))[-1]  # Monday: 孙丽 is the counsellor on duty
        assert words[:6] in alert and "未留电话" in alert, (kind, alert)
    assert len(await cases(sim)) == len(PHRASINGS)
    # before escalation nobody but the counsellor on duty hears of them
    for chat in ("v-tangyu", "c-zhao", "c-qian", "c-chu", "c-feng"):
        assert await crisis_alerts(sim, chat) == [], chat


@pytest.mark.parametrize("kind,words", [PHRASINGS[0], PHRASINGS[2], PHRASINGS[4], PHRASINGS[8]])
async def test_crisis_words_mid_form_keep_the_form(sim: Sim, kind: str, words: str) -> None:
    resident = "r-midform"
    await start_form(sim, resident)
    await sim.say(resident, words)  # typed where the address was asked
    replies = await sim.bot_texts(resident)
    assert "12356" in replies[-2] and "方便留个电话吗" in replies[-1]
    alert = (await crisis_alerts(sim, "v-sunli"))[-1]
    assert "幸福社区" in alert  # the station chosen in the form
    # the phone they then type goes to the person and the case; the counsellor gets it privately
    sim.secrets.add("13987654321")
    await sim.say(resident, "13987654321")
    assert "会尽快打给您" in await sim.last(resident)
    assert await phone_of(sim, (await cases(sim))[0].resident_id) == "13987654321"
    assert (await cases(sim))[0].phone == "13987654321"
    assert "13987654321" in await sim.last("v-sunli")
    # the form was kept: back at the address question, and it goes through to the end
    await sim.press(resident, resident, "继续填写刚才的求助")
    assert "地址" in await sim.last(resident)
    await sim.say(resident, "和平路8号2单元101")
    sim.secrets.add("和平路8号2单元101")
    await sim.say(resident, "13987654321")
    await sim.say(resident, "腿脚不便，需要送饭")
    await sim.press(resident, resident, "确认提交")
    assert "已提交，编号" in await sim.last(resident)


async def test_crisis_words_in_a_description_and_pressing_on_with_the_form(sim: Sim) -> None:
    resident = "r-desc"
    await start_form(sim, resident)
    await sim.say(resident, "幸福路3号")
    await sim.say(resident, "13811112222")
    sim.secrets.update({"幸福路3号", "13811112222"})
    await sim.say(resident, "我妈腿不好，要去医院。我真的不想活了")
    replies = await sim.bot_texts(resident)
    assert "12356" in replies[-1]  # a phone is known from the form: no question for it
    assert "13811112222" in (await crisis_alerts(sim, "v-sunli"))[-1]
    # a press on the form's own buttons carries on with the form (nothing was lost)
    await sim.say(resident, "腿脚不便，需要送饭")
    assert "转给心理老师" in await sim.last(resident)  # while the case is live, words go to it
    assert "腿脚不便" in await sim.last("v-sunli")
    await sim.press(resident, resident, "继续填写刚才的求助")
    await sim.say(resident, "腿脚不便，需要送饭")
    assert "请确认" in await sim.last(resident)


async def test_a_rating_comment_is_checked_too(sim: Sim) -> None:
    number = await sim.ask_for_help("r-rate", "为老服务", "送餐助餐", "幸福社区")
    await sim.press("grp-xingfu-elderly", "v-liming", "接单")
    await sim.press("v-liming", "v-liming", "完成服务")
    await sim.press("r-rate", "r-rate", "⭐⭐⭐⭐⭐")
    await sim.say("r-rate", "谢谢你们这些年的照顾，以后不用管我了")
    assert "12356" in await sim.last("r-rate")
    alert = (await crisis_alerts(sim, "v-sunli"))[-1]
    assert "13812345678" in alert and number not in alert


async def test_the_chain_climbs_with_the_clock_and_stays_in_its_unit(sim: Sim) -> None:
    resident = "r-heping"
    await start_form(sim, resident, community="和平村")
    await sim.say(resident, "我不想活了")
    assert len(await crisis_alerts(sim, "v-sunli")) == 1
    await sim.advance(4)
    assert await crisis_alerts(sim, "v-tangyu") == []
    await sim.advance(1.5)  # 5 minutes unacknowledged: the next counsellor
    assert len(await crisis_alerts(sim, "v-tangyu")) == 1
    assert await crisis_alerts(sim, "c-feng") == []
    await sim.advance(5.5)  # the coordinators of 和平村's unit (its institute 和平镇)
    assert len(await crisis_alerts(sim, "c-feng")) == 1
    assert await crisis_alerts(sim, "c-zhao") == []
    await sim.advance(5.5)  # the county
    assert len(await crisis_alerts(sim, "c-zhao")) == 1
    await sim.advance(30)
    for other_unit in ("c-qian", "c-chu"):  # 幸福街道 and 幸福社区: never
        assert await crisis_alerts(sim, other_unit) == [], other_unit
    assert [len(await crisis_alerts(sim, c)) for c in ("v-sunli", "v-tangyu", "c-feng", "c-zhao")] == [1, 1, 1, 1]
    # a coordinator takes it: the resident is told someone is coming
    assert "由您联系" in (await sim.press("c-feng", "c-feng", "我来联系") or "")
    assert "马上就会联系您" in await sim.last(resident)
    assert "冯涛" in await sim.last("v-sunli")


async def test_acknowledged_in_time_it_climbs_no_further(sim: Sim) -> None:
    await sim.say("r-ack", "我攒了好多安眠药")
    await sim.advance(2)
    assert "由您联系" in (await sim.press("v-sunli", "v-sunli", "我来联系") or "")
    await sim.advance(30)
    for chat in ("v-tangyu", "c-zhao", "c-qian", "c-chu", "c-feng"):
        assert await crisis_alerts(sim, chat) == [], chat
    assert "已经由您负责" in (await sim.press("v-sunli", "v-sunli", "我来联系") or "")  # idempotent


async def test_medical_goes_to_the_units_coordinators_not_the_counsellors(sim: Sim) -> None:
    await sim.ask_for_help("r-med", "为老服务", "送餐助餐", "幸福社区")  # the resident's station is known
    await sim.say("r-med", "我妈突然晕倒了，怎么叫都不醒")
    reply = (await sim.bot_texts("r-med"))[-1]
    assert "120" in reply and reply.index("120") < 20  # 120 first
    for coordinator in ("c-chu", "c-qian"):  # 幸福社区 and its institute
        assert "医疗" in (await crisis_alerts(sim, coordinator))[-1], coordinator
        assert "13812345678" in (await crisis_alerts(sim, coordinator))[-1]
    for chat in ("v-sunli", "v-tangyu", "c-feng", "c-zhao"):
        assert await crisis_alerts(sim, chat) == [], chat
    await sim.advance(6)
    assert len(await crisis_alerts(sim, "c-zhao")) == 1
    assert await crisis_alerts(sim, "c-feng") == []
    assert [c.kind for c in await cases(sim)] == ["medical"]


async def test_two_counsellors_press_at_once_one_wins(sim: Sim) -> None:
    await sim.say("r-race", "我想一睡不醒")
    await sim.advance(6)  # 唐宇 has it now too
    buttons = [await sim.find_button(v, "我来联系") for v in ("v-sunli", "v-tangyu")]
    toasts = await asyncio.gather(*(sim.press_data(v, v, *b) for v, b in zip(("v-sunli", "v-tangyu"), buttons,
                                                                                     strict=True)))
    won = [t for t in toasts if t and "由您联系" in t]
    lost = [t for t in toasts if t and "负责" in t]
    assert len(won) == 1 and len(lost) == 1, toasts
    case = (await cases(sim))[0]
    assert case.status == "acknowledged" and case.assignee_id in ("v-sunli", "v-tangyu")
    assert [a for a, _ in await history(sim, case.id)].count("acknowledged") == 1
    assert sum("马上就会联系您" in t for t in await sim.bot_texts("r-race")) == 1


async def test_write_hand_on_and_close_a_case(sim: Sim) -> None:
    await sim.say("r-talk", "活着真没意思，我就是家里的累赘")
    # no phone: the counsellor writes to the resident through the bot, and the resident's answer comes back
    assert "请输入" in (await sim.press("v-sunli", "v-sunli", "给TA留言") or "")
    await sim.say("v-sunli", "您好，我是心理老师孙丽，愿意和我聊聊吗？")
    assert "心理老师：您好，我是心理老师孙丽" in await sim.last("r-talk")
    await sim.say("r-talk", "好的，谢谢你")
    assert "好的，谢谢你" in await sim.last("v-sunli")
    # 转给… 唐宇: the case is offered to him alone
    await sim.press("v-sunli", "v-sunli", "转给…")
    assert "已转给唐宇" in (await sim.press("v-sunli", "v-sunli", "唐宇") or "")
    assert "孙丽把这个个案转给您" in (await crisis_alerts(sim, "v-tangyu"))[-1]
    assert "唐宇负责" in (await sim.press("v-sunli", "v-sunli", "我来联系") or "")
    assert "由您联系" in (await sim.press("v-tangyu", "v-tangyu", "我来联系") or "")
    # 已联系 with an outcome closes it; the resident's next words are an ordinary conversation again
    await sim.press("v-tangyu", "v-tangyu", "已联系")
    assert "已记录" in (await sim.press("v-tangyu", "v-tangyu", "已通话，暂时安全") or "")
    case = (await cases(sim))[0]
    assert (case.status, case.outcome) == ("closed", "safe")
    assert "唐宇" in await sim.last("v-sunli")
    assert "结束" in (await sim.press("v-tangyu", "v-tangyu", "我来联系") or "")
    await sim.say("r-talk", "你好")
    assert "隐私说明" in (await sim.bot_texts("r-talk"))[-1]  # a new form begins (its privacy notice first)
    actions = [a for a, _ in await history(sim, case.id)]
    assert actions[:2] == ["opened", "alerted"] and "handed" in actions and actions[-1] == "outcome"
    # someone the case never reached may not press its buttons
    _, data = await sim.find_button("v-tangyu", "我来联系")
    await sim.say("v-liming", "/hours")  # a message of his own to press on, with the case's data forged
    own = (await sim.messages("v-liming"))[-1]["message_id"]
    assert "没有发给您" in (await sim.press_data("v-liming", "v-liming", own, data) or "")


# ---- psychological requests: vetted counsellors only, 1:1, never in a group ------------------------------------

async def test_psych_request_goes_to_counsellors_only_never_a_group(sim: Sim) -> None:
    number = await sim.ask_for_help("r-psych", "心理疏导", "谈心疏导", "幸福社区", description="老伴走后整夜睡不着")
    await sim.advance(31)  # reminded
    await sim.advance(30)  # escalated: the county team is the top, the coordinators are told
    for group in GROUPS + ["grp-xingfu-street-bianmin"]:
        assert not any(number in t for t in await sim.bot_texts(group)), group
    assert any(number in t for t in await sim.bot_texts("v-sunli"))
    assert not any(number in t for t in await sim.bot_texts("v-tangyu"))  # off duty on Monday
    assert "接单成功" in (await sim.press("v-sunli", "v-sunli", "接单") or "")
    assert "睡不着" in await sim.last("v-sunli")


async def test_a_non_counsellor_may_not_claim_a_psych_request(backend: Backend) -> None:
    def lay_member(data: dict[str, Any]) -> None:  # a member of the psych team without the qualification
        team = next(t for t in data["teams"] if t["id"] == "t-county-psych")
        team["members"].append("v-zhoujie")
        team["roster"][0]["volunteers"].append("v-zhoujie")

    s = Sim(demo_config(backend.database_url, backend.redis_url, lay_member), Clock(frozen_at=MONDAY_10AM_UTC),
            redis_prefix=backend.redis_prefix)
    await s.start()
    try:
        number = await s.ask_for_help("r-lay", "心理疏导", "谈心疏导", "幸福社区")
        assert not any(number in t for t in await s.bot_texts("v-zhoujie"))  # never told
        message_id, data = await s.find_button("v-sunli", "接单", contains=number)
        await s.say("v-zhoujie", "/hours")  # a message of his own to press on, with the claim's data forged
        own = (await s.messages("v-zhoujie"))[-1]["message_id"]
        assert "资质" in (await s.press_data("v-zhoujie", "v-zhoujie", own, data) or "")
        assert "接单成功" in (await s.press_data("v-sunli", "v-sunli", message_id, data) or "")
    finally:
        await s.close()


@pytest.fixture
async def broadcasting_sim(backend: Backend) -> AsyncIterator[Sim]:
    """The demo with psychological support configured `broadcast: true`."""
    def broadcast(data: dict[str, Any]) -> None:
        next(c for c in data["categories"] if c["id"] == "psych")["broadcast"] = True

    s = Sim(demo_config(backend.database_url, backend.redis_url, broadcast), Clock(frozen_at=MONDAY_10AM_UTC),
            redis_prefix=backend.redis_prefix)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def test_broadcast_is_configurable_per_category(broadcasting_sim: Sim) -> None:
    sim = broadcasting_sim
    number = await sim.ask_for_help("r-bc", "心理疏导", "谈心疏导", "幸福社区", description="最近心里很难受")
    card = await sim.last("grp-county-psych")
    assert number in card and "难受" not in card  # a card, still without content
    assert "接单成功" in (await sim.press("grp-county-psych", "v-sunli", "接单") or "")
    assert "难受" in await sim.last("v-sunli")


async def test_every_reveal_of_a_case_is_audited(sim: Sim) -> None:
    """Each alert (and each escalation) that shows a case's words and phone to someone is an audit row;
    the county's coordinators read them with /audit <case number>, others may not."""
    import re

    await sim.say("r-audit", "我不想活了")
    alert = (await crisis_alerts(sim, "v-sunli"))[-1]
    found = re.search(r"W\d{4}", alert)
    assert found, alert
    await sim.advance(5.5)  # unacknowledged: the next counsellor too
    await sim.say("c-zhao", f"/audit {found.group()}")
    trail = await sim.last("c-zhao")
    assert "孙丽" in trail and "唐宇" in trail and "危机个案提醒（首次提醒）" in trail, trail
    assert "危机个案提醒（无人响应，逐级上报）" in trail, trail
    await sim.say("c-feng", f"/audit {found.group()}")
    assert "只对县（区）中心的专管员开放" in await sim.last("c-feng")


async def test_the_people_of_a_case_see_its_history_others_do_not(sim: Sim) -> None:
    import re

    await sim.say("r-hist", "我不想活了")
    found = re.search(r"W\d{4}", (await crisis_alerts(sim, "v-sunli"))[-1])
    assert found
    number = found.group()
    assert "由您联系" in (await sim.press("v-sunli", "v-sunli", "我来联系") or "")
    await sim.say("v-sunli", f"/case {number}")
    history = await sim.last("v-sunli")
    assert f"个案 {number}（心理危机）" in history and "状态：已接手" in history and "负责人：孙丽" in history
    assert "提醒 → 孙丽" in history and "接手联系" in history, history
    assert "不想活" not in history  # the words are not repeated here
    await sim.say("c-zhao", f"/case {number}")  # the county
    assert "负责人：孙丽" in await sim.last("c-zhao")
    for outsider in ("c-feng", "v-liming"):  # another unit's coordinator; a volunteer the case never reached
        await sim.say(outsider, f"/case {number}")
        assert "没有发给您" in await sim.last(outsider), outsider
    await sim.say("c-zhao", f"/audit {number}")
    assert "查看危机个案记录" in await sim.last("c-zhao")


async def test_command_words_never_open_a_case(sim: Sim) -> None:
    """我的数据, 取消, 我的任务 …: the bot's own keywords are commands, not a person speaking of themselves (the
    model once read 我的数据 as risk)."""
    from flows.i18n import keywords

    await sim.ask_for_help("r-words", "为老服务", "送餐助餐", "幸福社区")
    for word in sorted(keywords()):
        if word.startswith("/") or word in ("删除我的数据", "删除我的信息", "/erase"):
            continue  # commands go their own way; erasing would end this resident's story
        await sim.say("r-words", word)
        await sim.say("r-words", "取消")  # leave whatever the word started
    assert await cases(sim) == []
