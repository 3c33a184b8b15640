"""The whole loop on WeCom: a resident through 微信客服, volunteers and coordinators through the app."""
from __future__ import annotations

import logging

import pytest

from tests.fakes.wecom import card_text
from tests.fakes.wecom_bot import WecomBot

RESIDENT = "wmRESIDENT0001"


def cards_of(bot: WecomBot, userid: str) -> list[str]:
    """The task ids of the cards a member received, oldest first."""
    return [m["task_id"] for m in bot.fake.app_inbox[userid] if m["kind"] == "card"]


async def ask_for_help(bot: WecomBot, user: str = RESIDENT, service: str = "陪同就医") -> str:
    """A resident scans the station's QR code and walks the intake by menu clicks and typing."""
    await bot.fake.enter_session(user, "s-xingfu")
    await bot.settle()
    assert "幸福社区" in bot.fake.kf_texts(user)[-1]  # the welcome names the station of the QR code
    await bot.resident(user, "你好")
    assert "隐私说明" in bot.fake.kf_texts(user)[-1]
    await bot.click(user, "同意并继续")  # the privacy notice first; the station of the QR code is kept
    await bot.click(user, "为老服务")
    await bot.click(user, service)
    assert "为谁" in bot.fake.kf_texts(user)[-1] or "家里人" in bot.fake.kf_texts(user)[-1]  # station preselected
    await bot.click(user, "家里人")
    await bot.click(user, "选日期")
    for text in ("明天上午9点", "幸福路12号3单元401", "13812345678", "老人腿脚不便，需要陪同去医院复查"):
        await bot.resident(user, text)
    await bot.resident(user, "1")  # typed number = the first menu item (确认提交)
    last = bot.fake.kf_texts(user)[-1]
    assert "已提交，编号" in last, bot.fake.kf_texts(user)
    return last.split("编号 ")[1].split("。")[0]


async def test_whole_loop_on_wecom(bot: WecomBot) -> None:
    fake = bot.fake
    number = await ask_for_help(bot)
    # 派单: the on-duty members got a claim card in the app
    for volunteer in ("v-liming", "v-zhangwei"):
        assert number in fake.texts(volunteer)[-1] and "接单" in fake.texts(volunteer)[-1]
    assert not any(number in t for t in fake.texts("v-wangfang"))  # off duty at 10:00
    # 接单 on the card: the answer, every copy turned into "taken by", details to the winner alone
    assert "接单成功" in await bot.press("v-liming", "接单", number)
    for volunteer in ("v-liming", "v-zhangwei"):
        nudge = fake.cards[cards_of(bot, volunteer)[0]]
        assert "已由 李明 接单" in card_text(nudge.card) and not nudge.card.get("button_list")
        assert len(nudge.updates) == 1
    details = card_text(fake.cards[cards_of(bot, "v-liming")[1]].card)
    assert "13812345678" in details and "幸福路12号3单元401" in details and "出发" in details
    assert not any("13812345678" in t for t in fake.texts("v-zhangwei"))
    assert "接单" in fake.kf_texts(RESIDENT)[-1]  # the resident hears within the window
    # the resident's 48 h run out: 出发 and the rating prompt are held, never sent over kf's limits
    await bot.advance(hours=49)
    assert "出发" in await bot.press("v-liming", "出发")
    await bot.advance(minutes=90)
    assert "完成" in await bot.press("v-liming", "完成服务")
    assert any("1.5 小时" in t for t in fake.texts("v-liming")[-3:])
    await bot.press("v-liming", "确认")
    assert any("已记录 1.5 小时" in t for t in fake.texts("v-liming")[-2:])
    assert not any("已出发" in t or "打分" in t for t in fake.kf_texts(RESIDENT))
    # 评单: the resident writes again; the held rating prompt comes first, then the answer
    await bot.resident(RESIDENT, "你好")
    texts = fake.kf_texts(RESIDENT)
    assert "已出发" in texts[-4] and "打分" in texts[-3], texts[-4:]
    await bot.click(RESIDENT, "⭐⭐⭐⭐⭐")
    assert any("谢谢您的评价" in t or "5 星" in t for t in fake.kf_texts(RESIDENT)[-2:])
    await bot.resident(RESIDENT, "非常感谢小李！")
    assert "谢谢" in fake.kf_texts(RESIDENT)[-1]
    await bot.click(RESIDENT, "⭐⭐⭐⭐⭐")
    assert "已经评价过" in fake.kf_texts(RESIDENT)[-1]
    # 奖单 and a coordinator command through the app
    assert "累计时长：1.5 小时" in await bot.member("v-liming", "我的时长")
    history = await bot.member("c-zhao", f"/history {number}")
    for action in ("提交", "接单", "出发", "完成", "评价"):
        assert action in history


async def test_kf_link_command_and_scene(bot: WecomBot) -> None:
    reply = await bot.member("c-zhao", "/kflink s-guangming")
    assert "光明社区" in reply and "scene_param=s-guangming" in reply
    assert "s-xingfu" in await bot.member("c-zhao", "/kflink")  # usage lists the stations
    assert "只有专管员" in await bot.member("v-liming", "/kflink s-xingfu")


async def test_volunteer_commands_through_the_app(bot: WecomBot) -> None:
    assert "已开始值班" in await bot.member("v-wangfang", "值班")
    assert "值班" in await bot.member("v-liming", "帮助")


async def test_link_code_maps_a_new_member(bot: WecomBot) -> None:
    issued = await bot.member("c-zhao", "/linkcode v-liming")
    code = issued.split("关联码：")[1].split()[0]
    assert "关联成功" in await bot.member("wwNEWMEMBER01", f"/link {code}")
    assert "已开始值班" in await bot.member("wwNEWMEMBER01", "值班")  # now speaks as 李明


async def test_card_edit_without_a_code_becomes_a_short_text(bot: WecomBot) -> None:
    fake = bot.fake
    number = await ask_for_help(bot, "wmRESEDIT0001", service="打扫卫生")
    nudge = cards_of(bot, "v-liming")[0]
    await bot.member("c-zhao", f"/assign {number} 王芳")  # no click: the card's own send code is spent
    assert len(fake.cards[nudge].updates) == 1 and "王芳" in card_text(fake.cards[nudge].card)
    await bot.resident("wmRESEDIT0001", "我的求助")
    await bot.click("wmRESEDIT0001", f"取消 …{number[-4:]}")  # no code left for the nudge card
    assert len(fake.cards[nudge].updates) == 1
    # the on-duty members saw it taken; a later change that gives them nothing to do is no text for them
    for volunteer in ("v-liming", "v-zhangwei"):
        assert not any("已取消" in text for text in fake.texts(volunteer))
    assert any("取消" in text and number in text for text in fake.texts("v-wangfang"))  # the claimer is told


async def test_card_without_a_code_tells_the_members_when_it_is_open_again(bot: WecomBot) -> None:
    number = await ask_for_help(bot, "wmRESOPEN0001", service="打扫卫生")
    nudge = cards_of(bot, "v-liming")[0]
    await bot.member("c-zhao", f"/assign {number} 李明")  # spends the send code: taken
    await bot.member("v-liming", "/tasks")
    await bot.press("v-liming", "无法前往，退回", contains=number)  # given back: the members may claim again
    assert len(bot.fake.cards[nudge].updates) == 1
    assert any(number in text for text in bot.fake.texts("v-zhangwei"))


async def test_logs_carry_no_personal_data_or_secrets(bot: WecomBot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await ask_for_help(bot, "wmRESLOG0001")
    await bot.press("v-liming", "接单")
    await bot.resident("wmRESLOG0001", "人工")
    secrets = ("13812345678", "幸福路12号", "腿脚不便", bot.fake.app_secret, bot.fake.app_aes, bot.fake.kf_aes,
               bot.fake.app_token, bot.fake.kf_token)
    for secret in secrets:
        assert secret not in caplog.text
    assert not any(token in caplog.text for token in bot.fake.tokens)
