"""The resident's rights (PIPL) end to end through the simulator, on SQLite and on PostgreSQL + Redis: the
privacy notice, 我的数据, 导出我的数据, 更正电话/地址, 删除我的数据, masking, and the audit trail."""
from __future__ import annotations

import json

from sqlalchemy import select

from storage.db import Database
from storage.models import AuditEntry, ConversationState, HelpRequest, Identity, Person, Rating, SimMessage
from tests.conftest import Backend
from tests.fakes.telegram_sim import TgSim
from tests.simclient import Sim

GROUP = "grp-xingfu-elderly"


async def _rows(sim: Sim, model: type, *where: object) -> list:  # type: ignore[type-arg]
    db = Database(sim.cfg.storage.database_url)
    try:
        async with db.transaction() as s:
            return list((await s.execute(select(model).where(*where))).scalars())
    finally:
        await db.dispose()


async def _audit(sim: Sim) -> list[tuple[str | None, str, int | None, str | None, str]]:
    return [(a.actor_id, a.action, a.request_id, a.subject_person_id, a.reason)
            for a in await _rows(sim, AuditEntry)]


async def _person_of(sim: Sim, user: str) -> Person:
    ident = (await _rows(sim, Identity, Identity.external_id == user))[0]
    return (await _rows(sim, Person, Person.id == ident.person_id))[0]


async def test_privacy_notice_comes_before_the_first_form(sim: Sim) -> None:
    await sim.say("r-new", "你好", "王大爷")
    notice = await sim.last("r-new")
    assert "隐私说明" in notice and "删除我的数据" in notice and "180天" in notice
    assert await sim.find_button("r-new", "同意并继续")
    assert "哪方面" not in notice  # no form yet, and nothing of one stored
    assert not [s for s in await _rows(sim, ConversationState) if s.flow == "intake"]
    assert (await _person_of(sim, "r-new")).privacy_accepted_at is None
    # anything else typed meanwhile shows the notice again
    await sim.say("r-new", "我要送饭")
    assert "隐私说明" in await sim.last("r-new")
    # accepting starts the form (the first message was not lost), with the time stored on the person
    assert await sim.press("r-new", "r-new", "同意并继续") == "已同意"
    assert "哪方面" in await sim.last("r-new")
    assert (await _person_of(sim, "r-new")).privacy_accepted_at == sim.clock.now()
    # once accepted, a new form starts at once; 隐私 shows the notice again, without buttons
    await sim.say("r-new", "取消")
    await sim.say("r-new", "求助")
    assert "哪方面" in await sim.last("r-new")
    await sim.say("r-new", "隐私")
    again = await sim.last("r-new")
    assert "隐私说明" in again and "已同意过" in again
    assert (await sim.messages("r-new"))[-1]["buttons"] == []
    # the form going on is kept: the next answer still counts
    await sim.press("r-new", "r-new", "为老服务")
    assert "哪项服务" in await sim.last("r-new")


async def test_declining_the_notice_keeps_nothing_and_typing_agree_works(sim: Sim) -> None:
    await sim.say("r-no", "你好")
    assert await sim.press("r-no", "r-no", "不同意") == "未同意"
    assert "没有保存" in await sim.last("r-no")
    assert (await _person_of(sim, "r-no")).privacy_accepted_at is None
    assert not await _rows(sim, ConversationState, ConversationState.key.like("%r-no%"))
    await sim.say("r-no", "/privacy")
    assert "隐私说明" in await sim.last("r-no")
    await sim.say("r-no", "同意")  # typing the words works like the button
    assert "哪方面" in await sim.last("r-no")


async def test_my_data_and_export(sim: Sim) -> None:
    number = await sim.ask_for_help("r-data", "为老服务", "陪同就医", "幸福社区", phone="13912345678",
                                    address="和平路8号2单元301", description="腿脚不便去医院复查")
    await sim.say("r-data", "我的数据")
    summary = await sim.last("r-data")
    for shown in ("张阿姨", "13912345678", "和平路8号2单元301", "腿脚不便", number, "幸福社区"):
        assert shown in summary, shown
    await sim.say("r-data", "导出我的数据")
    msg = (await sim.messages("r-data"))[-1]
    assert msg["document"] and msg["document"]["filename"].endswith(".json")
    assert sim.http is not None
    async with sim.http.get(sim.base + msg["document"]["url"]) as r:
        assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
        data = json.loads(await r.text())
    assert data["person"]["phone"] == "13912345678" and data["person"]["name"] == "张阿姨"
    assert data["requests"][0]["number"] == number and data["requests"][0]["address"] == "和平路8号2单元301"
    # another chat cannot fetch it
    async with sim.http.get(sim.base + msg["document"]["url"].replace("/r-data/", "/r-other/")) as r:
        assert r.status == 404
    person = await _person_of(sim, "r-data")
    rows = await _audit(sim)
    assert (person.id, "data_view", None, person.id, "resident_request") in rows
    assert (person.id, "data_export", None, person.id, "resident_request") in rows


async def test_correct_phone_and_address_reach_the_claimer(sim: Sim) -> None:
    number = await sim.ask_for_help("r-fix", "为老服务", "打扫卫生", "幸福社区")
    await sim.press(GROUP, "v-liming", "接单")
    await sim.say("r-fix", "更正电话")
    assert "新的联系电话" in await sim.last("r-fix")
    await sim.say("r-fix", "1391234")  # bad input: a kind word and the same question
    assert "少了一位" in await sim.last("r-fix")
    await sim.say("r-fix", "13987654321")
    assert "139****4321" in await sim.last("r-fix")
    await sim.say("r-fix", "更正地址")
    await sim.say("r-fix", "光明路1号")
    assert "已更正" in await sim.last("r-fix")
    sim.secrets.update({"13987654321", "光明路1号"})
    details = [m for m in await sim.messages("v-liming") if number in m["text"] and "地址" in m["text"]][-1]
    assert "13987654321" in details["text"] and "光明路1号" in details["text"]
    req = (await _rows(sim, HelpRequest, HelpRequest.number == number))[0]
    assert (req.phone, req.address) == ("13987654321", "光明路1号")
    assert (await _person_of(sim, "r-fix")).phone == "13987654321"
    rows = await _audit(sim)
    assert ("v-liming", "claimer_details", req.id, req.resident_id, "claimed") in rows
    assert (req.resident_id, "data_correct", None, req.resident_id, "phone") in rows
    assert (req.resident_id, "data_correct", None, req.resident_id, "address") in rows
    # 取消 leaves a correction without changing anything
    await sim.say("r-fix", "更正电话")
    await sim.say("r-fix", "取消")
    assert "没有修改" in await sim.last("r-fix")
    assert (await _person_of(sim, "r-fix")).phone == "13987654321"


async def test_erase_my_data(sim: Sim) -> None:
    done = await sim.ask_for_help("r-del", "为老服务", "送餐助餐", "幸福社区", phone="13700001111",
                                  address="幸福路99号", description="独居老人需要送午饭")
    await sim.press(GROUP, "v-zhangwei", "接单")
    await sim.press("v-zhangwei", "v-zhangwei", "完成服务")
    await sim.press("r-del", "r-del", "⭐⭐⭐⭐")
    await sim.say("r-del", "送饭的小张电话13700001111打不通")
    await sim.press("v-zhangwei", "v-zhangwei", "确认")
    open_one = await sim.ask_for_help("r-del", "为老服务", "打扫卫生", "幸福社区", phone="13700001111",
                                      address="幸福路99号", description="帮忙打扫厨房")
    await sim.press(GROUP, "v-liming", "接单")
    person = await _person_of(sim, "r-del")

    await sim.say("r-del", "删除我的数据")
    ask = await sim.last("r-del")
    assert "永久删除" in ask and "无法恢复" in ask and "1 条" in ask
    assert await sim.press("r-del", "r-del", "先不删") == "未删除"
    assert (await _person_of(sim, "r-del")).phone == "13700001111"
    await sim.say("r-del", "删除我的数据")
    assert await sim.press("r-del", "r-del", "确认删除") == "已删除"
    assert "已删除" in await sim.last("r-del")

    # the claimer of the open request is told; their copy of the details no longer shows the address
    assert any(open_one in t and "删除了自己的数据" in t for t in await sim.bot_texts("v-liming"))
    assert not any("幸福路99号" in t or "13700001111" in t for t in await sim.bot_texts("v-liming"))
    assert not any("幸福路99号" in t or "13700001111" in t for t in await sim.bot_texts("v-zhangwei"))
    card = [m for m in await sim.messages(GROUP) if open_one in m["text"]][-1]
    assert "已取消" in card["text"]

    # no personal field is left in the database; the anonymous rows for statistics are
    db_person = (await _rows(sim, Person, Person.id == person.id))[0]
    assert (db_person.name, db_person.phone, db_person.erased_at) == ("", None, sim.clock.now())
    assert not await _rows(sim, Identity, Identity.person_id == person.id)
    reqs = await _rows(sim, HelpRequest, HelpRequest.resident_id == person.id)
    assert {r.number: r.status for r in reqs} == {done: "finished", open_one: "cancelled"}
    for r in reqs:
        assert (r.address, r.phone, r.description, r.chat_id) == ("", "", "", "")
    rating = (await _rows(sim, Rating, Rating.request_id == reqs[0].id))[0]
    assert (rating.stars, rating.comment) == (4, None)
    assert not await _rows(sim, ConversationState, ConversationState.key.like("%r-del%"))
    transcript = await _rows(sim, SimMessage, SimMessage.chat_id == "r-del")
    assert [m.text for m in transcript if "已删除" not in m.text] == []  # only the confirmation arrives after
    assert (person.id, "data_erase", None, person.id, "resident_request") in await _audit(sim)

    # the person who writes again is a stranger: the privacy notice first
    await sim.say("r-del", "你好")
    assert "隐私说明" in await sim.last("r-del")


async def test_a_low_rating_comment_reaches_coordinators_masked(sim: Sim) -> None:
    number = await sim.ask_for_help("r-mask", "为老服务", "送餐助餐", "幸福社区")
    await sim.press(GROUP, "v-zhangwei", "接单")
    await sim.press("v-zhangwei", "v-zhangwei", "完成服务")
    await sim.press("r-mask", "r-mask", "⭐")
    await sim.say("r-mask", "太差了，请打我电话 138 1234 5678 或 0571-88886666 回访")
    alert = await sim.last("c-zhao")
    assert number in alert and "138****5678" in alert and "0571****6666" in alert
    assert "1234" not in alert and "8888" not in alert
    for coordinator in ("c-zhao", "c-chu", "c-qian"):
        assert not any("13812345678" in t or "138 1234 5678" in t for t in await sim.bot_texts(coordinator))


async def test_audit_lists_reveals_for_the_county_only(sim: Sim) -> None:
    number = await sim.ask_for_help("r-aud", "为老服务", "陪同就医", "幸福社区")
    await sim.say("c-zhao", f"/assign {number} 李明")
    await sim.say("v-liming", "我的任务")
    await sim.say("r-aud", "导出我的数据")
    await sim.say("c-zhao", f"/audit {number}")  # 赵建国 is the county center's coordinator
    trail = await sim.last("c-zhao")
    assert f"编号 {number}" in trail
    assert "李明  接单志愿者收到详细信息（专管员派单）" in trail
    assert "李明  接单志愿者收到详细信息（查看我的任务）" in trail
    assert "居民本人  居民导出自己的数据（本人申请）" in trail
    assert "张阿姨" not in trail  # a resident is not named
    req = (await _rows(sim, HelpRequest, HelpRequest.number == number))[0]
    assert ("v-liming", "claimer_details", req.id, req.resident_id, "assigned") in await _audit(sim)
    # coordinators of a station or an institute are refused kindly; a volunteer is told it is not theirs
    for other in ("c-chu", "c-qian"):
        await sim.say(other, f"/audit {number}")
        assert "只对县（区）中心的专管员开放" in await sim.last(other)
    await sim.say("v-liming", f"/audit {number}")
    assert "只有专管员" in await sim.last("v-liming")
    # bad input: a kind word
    await sim.say("c-zhao", "/audit")
    assert "用法" in await sim.last("c-zhao")
    await sim.say("c-zhao", "/audit 20990101-0001")
    assert "20990101-0001" in await sim.last("c-zhao")


async def test_export_on_telegram_is_a_document(backend: Backend) -> None:
    tg = await TgSim.create(backend, "polling")
    try:
        await tg.bootstrap("c-zhao")
        await tg.link("v-liming")
        await tg.bind(GROUP, "t-xingfu-elderly")
        number = await tg.ask_for_help("r-tgdata", "为老服务", "陪同就医", "幸福社区")
        await tg.say("r-tgdata", "导出我的数据")
        msg = (await tg.messages("r-tgdata"))[-1]
        assert msg["document"] and msg["document"]["filename"].endswith(".json"), msg
        assert "JSON" in msg["text"]  # the caption
        data = json.loads(msg["document"]["content"])
        assert data["requests"][0]["number"] == number and data["requests"][0]["phone"] == "13812345678"
        assert tg.fake is not None and tg.fake.count("sendDocument") == 1
    finally:
        await tg.close()
