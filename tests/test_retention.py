"""The retention purge (privacy.retention): the clock moves on and nothing personal is left behind, while the
counts statistics need stay and what is still in use is kept."""
from __future__ import annotations

from sqlalchemy import func, select

from storage.models import Base, ConversationState, HelpRequest, Person, Rating, ServiceRecord
from tests.simclient import Sim

DONE = {"phone": "13811110001", "address": "光华路7号2单元", "description": "需要人帮忙买菜送到家里",
        "name": "王奶奶"}
OPEN = {"phone": "13822220002", "address": "星河路88号", "description": "家里水管坏了需要修理", "name": "赵爷爷"}
DRAFT_ADDRESS = "月亮湾小区9栋"
COMMENT = "来得太晚了，有事打13833330003"


async def rows_with(sim: Sim, secrets: list[str]) -> list[tuple[str, str]]:
    """(table, secret) for every row of every table that contains one of the secrets."""
    assert sim.app is not None
    found = []
    async with sim.app.db.read() as s:
        for table in Base.metadata.sorted_tables:
            for row in (await s.execute(select(table))).all():
                text = repr(tuple(row))
                found += [(table.name, secret) for secret in secrets if secret in text]
    return found


async def draft_states(sim: Sim, user: str) -> int:
    assert sim.app is not None
    async with sim.app.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(ConversationState)
                                    .where(ConversationState.key.like(f"%:{user}")))).scalar_one())


async def advance_days(sim: Sim, days: float) -> None:
    while days > 0:  # the simulator moves at most 30 days at a time
        step = min(days, 30)
        await sim.advance(step * 24 * 60)
        days -= step


async def start_a_draft(sim: Sim, resident: str) -> None:
    await sim.say(resident, "你好", "李大爷")
    assert await sim.accept_privacy(resident)
    for label in ("为老服务", "送餐助餐", "幸福社区", "家里人", "选日期"):
        await sim.press(resident, resident, label)
    await sim.say(resident, "明天上午9点")
    await sim.say(resident, DRAFT_ADDRESS)
    assert "电话" in await sim.last(resident)  # the form waits for a phone number


async def test_an_abandoned_draft_is_removed_after_three_days_without_a_new_message(sim: Sim) -> None:
    await start_a_draft(sim, "r-draft")
    await advance_days(sim, 2)
    assert await draft_states(sim, "r-draft") == 1  # still there: the person may come back to it
    await advance_days(sim, 1.3)  # 3 days after the last answer, plus the purge interval (6 h)
    assert await draft_states(sim, "r-draft") == 0
    assert await rows_with(sim, [DRAFT_ADDRESS]) == [("sim_messages", DRAFT_ADDRESS)]  # the chat log, 7 days


async def test_after_the_retention_time_nothing_personal_is_left(sim: Sim) -> None:
    done = await sim.ask_for_help("r-done", "为老服务", "代买物品", "幸福社区", **DONE)
    await sim.press("grp-xingfu-elderly", "v-zhangwei", "接单")
    await sim.press("v-zhangwei", "v-zhangwei", "完成服务")
    await sim.press("v-zhangwei", "v-zhangwei", "确认")
    await sim.press("r-done", "r-done", "⭐⭐")
    await sim.say("r-done", COMMENT)
    still_open = await sim.ask_for_help("r-open", "困难帮扶", "生活帮扶", "幸福社区", **OPEN)
    await start_a_draft(sim, "r-draft")
    personal = [*DONE.values(), DRAFT_ADDRESS, COMMENT, "13833330003", "李大爷"]
    assert {secret for _, secret in await rows_with(sim, personal)} == set(personal)

    await advance_days(sim, 170)
    kept = await rows_with(sim, personal)
    # within 180 days: the request, its rating and the residents; the draft, the outbox and the chat log are gone
    assert {secret for _, secret in kept} == set(personal) - {DRAFT_ADDRESS}
    assert {table for table, _ in kept} == {"requests", "ratings", "people", "identities"}

    await advance_days(sim, 11)  # 181 days after the service
    assert await rows_with(sim, personal) == []
    assert {secret for _, secret in await rows_with(sim, list(OPEN.values()))} == set(OPEN.values())
    assert sim.app is not None
    async with sim.app.db.read() as s:  # what statistics count stays
        finished = (await s.execute(select(HelpRequest).where(HelpRequest.number == done))).scalar_one()
        assert (finished.status, finished.phone, finished.address, finished.description) == ("finished", "", "", "")
        rating = await s.get(Rating, finished.id)
        assert rating is not None and (rating.stars, rating.comment) == (2, None)
        record = (await s.execute(select(ServiceRecord).where(ServiceRecord.request_id == finished.id))).scalar_one()
        assert record.hours > 0
        person = await s.get(Person, finished.resident_id)
        assert person is not None and (person.name, person.phone, person.is_resident) == ("", None, True)
        still = (await s.execute(select(HelpRequest).where(HelpRequest.number == still_open))).scalar_one()
        assert still.phone == OPEN["phone"]
    # a forgotten resident may come back and ask again
    await sim.say("r-done", "你好")
    assert "为老服务" in str(await sim.messages("r-done"))


async def test_the_purge_is_safe_to_run_twice(sim: Sim) -> None:
    from storage import retention

    assert sim.app is not None
    number = await sim.ask_for_help("r-twice", "为老服务", "打扫卫生", "幸福社区")
    await sim.say("r-twice", "我的求助")
    assert await sim.press("r-twice", "r-twice", f"取消 …{number[-4:]}") == "已取消"
    await advance_days(sim, 181)
    horizons = retention.Horizons.at(sim.app.clock.now(), 3, 180, 7)
    async with sim.app.db.transaction() as s:
        again = await retention.purge(s, horizons)
    assert again.total() == 0


def test_the_privacy_notice_says_the_configured_times() -> None:
    from flows import privacy

    text = privacy.notice("zh_CN", True, 5, 30).text
    assert "没填完的求助保存5天" in text and "个人信息保存30天后删除" in text
    assert "kept 5 days" in privacy.notice("en", False, 5, 30).text


async def test_a_closed_crisis_case_keeps_its_words_for_cases_days_only(sim: Sim) -> None:
    from sqlalchemy import update

    from storage.models import CrisisCase

    words, phone = "我不想活了，药已经准备好了", "13844440004"
    await sim.say("r-case", words)
    await sim.say("r-case", phone)  # the phone the bot asks for
    assert sim.app is not None
    async with sim.app.db.transaction() as s:  # a counsellor closed it (the buttons are test_crisis_case's)
        await s.execute(update(CrisisCase).values(status="closed", closed_at=sim.app.clock.now()))
    await advance_days(sim, 60)
    assert {table for table, _ in await rows_with(sim, [words, phone])} == {"crisis_cases", "people"}
    await advance_days(sim, 31)  # 90 days after closing: the case's words and phone go (the person's phone
    assert {table for table, _ in await rows_with(sim, [words, phone])} == {"people"}  # goes after 180)
