"""Link codes and group binding, through the simulator (the same commands every channel uses)."""
from __future__ import annotations

import re

from sqlalchemy import select

from storage.models import GroupBinding, Identity
from tests.simclient import Sim


async def _code(sim: Sim, coordinator: str, who: str) -> str:
    await sim.say(coordinator, f"/linkcode {who}")
    found = re.search(r"/link ([A-Z0-9]{8})", await sim.last(coordinator))
    assert found, await sim.last(coordinator)
    return found.group(1)


async def test_link_code_maps_a_new_account_to_a_volunteer_once(sim: Sim) -> None:
    code = await _code(sim, "c-zhao", "李明")  # by name works as well as by id
    await sim.say("phone-of-liming", "你好")  # first contact: an unknown person becomes a resident
    await sim.say("phone-of-liming", f"/link {code.lower()}")
    assert "关联成功" in await sim.last("phone-of-liming") and "志愿者" in await sim.last("phone-of-liming")
    await sim.say("phone-of-liming", "/hours")
    assert "李明" in await sim.last("phone-of-liming")
    async with sim.app.db.transaction() as s:  # type: ignore[union-attr]
        ident = await s.get(Identity, ("simulator", "phone-of-liming"))
        assert ident is not None and ident.person_id == "v-liming"
    # a code works once
    await sim.say("someone-else", f"/link {code}")
    assert "已经用过" in await sim.last("someone-else")
    await sim.say("someone-else", "/hours")
    assert "志愿者" in await sim.last("someone-else")  # still a resident: only volunteers may


async def test_only_coordinators_issue_codes_and_codes_expire(sim: Sim) -> None:
    await sim.say("v-liming", "/linkcode v-wangfang")
    assert "只有专管员" in await sim.last("v-liming")
    await sim.say("c-zhao", "/linkcode nobody-like-this")
    assert "/linkcode v-liming" in await sim.last("c-zhao")
    code = await _code(sim, "c-zhao", "v-wangfang")
    newer = await _code(sim, "c-zhao", "v-wangfang")  # a new code replaces the old one
    await sim.say("late", f"/link {code}")
    assert "过期" in await sim.last("late")
    await sim.advance(7 * 24 * 60 + 1)
    await sim.say("late", f"/link {newer}")
    assert "过期" in await sim.last("late")
    await sim.say("late", "/link")
    assert "过期" in await sim.last("late")


async def test_bind_refuses_a_second_team_and_unbind_works(sim: Sim) -> None:
    group = "grp-xingfu-elderly"
    await sim.send(group, "v-liming", "/bind t-xingfu-children")
    assert "只有专管员" in await sim.last(group)
    await sim.send(group, "c-chu", "/bind t-xingfu-children")
    assert "一个群只能绑定一个服务队" in await sim.last(group)
    await sim.send(group, "c-chu", "/bind t-xingfu-elderly")
    assert "已经绑定" in await sim.last(group)
    await sim.send(group, "c-chu", "/bind no-such-team")
    assert "t-xingfu-elderly" in await sim.last(group)
    await sim.send(group, "c-chu", "/unbind")
    assert "已解除" in await sim.last(group)
    async with sim.app.db.transaction() as s:  # type: ignore[union-attr]
        rows = (await s.execute(select(GroupBinding).where(GroupBinding.chat_id == group))).all()
    assert rows == []
    await sim.say("c-chu", "/bind t-xingfu-elderly")
    assert "群里使用" in await sim.last("c-chu")


async def test_fanout_channel_gets_one_card_for_all_on_duty_members(backend: object) -> None:
    """On the WeCom app one send reaches every on-duty member: one outbox row addressed "a|b"."""
    from bot.clock import Clock
    from storage.models import OutboxMessage
    from tests.simclient import MONDAY_10AM_UTC, demo_config

    def userids(data: dict) -> None:  # type: ignore[type-arg]
        for v in data["people"]["volunteers"]:
            if v["id"] in ("v-liming", "v-zhangwei", "v-wangfang"):
                v["wecom_userid"] = v["id"].replace("v-", "wx_")

    cfg = demo_config(backend.database_url, backend.redis_url, userids)  # type: ignore[attr-defined]
    sim = Sim(cfg, Clock(frozen_at=MONDAY_10AM_UTC), redis_prefix=backend.redis_prefix)  # type: ignore[attr-defined]
    await sim.start()
    try:
        await sim.ask_for_help("r-fan", "为老服务", "陪同就医", "幸福社区")
        async with sim.app.db.transaction() as s:  # type: ignore[union-attr]
            rows = list((await s.execute(select(OutboxMessage).where(OutboxMessage.channel == "wecom"))).scalars())
        # v-wangfang is not on duty on Monday morning; the two who are share one card
        assert [(r.chat_id, r.ledger_kind) for r in rows] == [("wx_liming|wx_zhangwei", "nudge")]
    finally:
        await sim.close()
