"""The small pure pieces: dates and times, phones, button data, crisis words, request states and texts."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from bot.config import RecognitionConfig
from flows import callbacks, safety
from flows import requests as rq
from flows.i18n import t
from flows.intake import check_phone, format_when, mask_phone
from flows.when import When, cn_number, is_past, parse_when

NOW = datetime(2026, 11, 22, 10, 0)  # a Sunday morning


# ---- when.py ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "at", "has_time"), [
    ("明天上午9点", datetime(2026, 11, 23, 9, 0), True),
    ("11月25日下午2点", datetime(2026, 11, 25, 14, 0), True),
    ("后天早上八点半", datetime(2026, 11, 24, 8, 30), True),
    ("周二下午", datetime(2026, 11, 24, 14, 0), False),
    ("下周一 14:30", datetime(2026, 11, 23, 14, 30), True),  # said on a Sunday: next week starts tomorrow
    ("下周三", datetime(2026, 11, 25, 0, 0), False),
    ("下下周三", datetime(2026, 12, 2, 0, 0), False),
    ("星期天上午", datetime(2026, 11, 22, 9, 0), False),
    ("今晚七点", datetime(2026, 11, 22, 19, 0), True),
    ("今晚", datetime(2026, 11, 22, 19, 0), False),
    ("2026-12-01 9:00", datetime(2026, 12, 1, 9, 0), True),
    ("2026年12月1日", datetime(2026, 12, 1, 0, 0), False),
    ("12/1 9:00", datetime(2026, 12, 1, 9, 0), True),
    ("中午一点", datetime(2026, 11, 22, 13, 0), True),
    ("中午12点", datetime(2026, 11, 22, 12, 0), True),
    ("晚上十一点", datetime(2026, 11, 22, 23, 0), True),
    ("上午十点一刻", datetime(2026, 11, 22, 10, 15), True),
    ("下午三点三刻", datetime(2026, 11, 22, 15, 45), True),
    ("下午2点20分", datetime(2026, 11, 22, 14, 20), True),
    ("明天 下午 3 点", datetime(2026, 11, 23, 15, 0), True),
    ("明早7点", datetime(2026, 11, 23, 7, 0), True),
    ("大后天", datetime(2026, 11, 25, 0, 0), False),
    ("三十号", datetime(2026, 11, 30, 0, 0), False),
    ("二十五号下午", datetime(2026, 11, 25, 14, 0), False),
    ("5号", datetime(2026, 12, 5, 0, 0), False),  # the 5th has passed this month: next month's
    ("1月5日", datetime(2027, 1, 5, 0, 0), False),  # rolls to next year in November
    ("十二月三号上午十点", datetime(2026, 12, 3, 10, 0), True),
    ("8点", datetime(2026, 11, 23, 8, 0), True),  # 8 o'clock said at 10:00 means tomorrow
    ("下午3点", datetime(2026, 11, 22, 15, 0), True),
    ("11月20日", datetime(2026, 11, 20, 0, 0), False),  # recent past stays in the past (and is_past)
])
def test_parse_when(text: str, at: datetime, has_time: bool) -> None:
    when = parse_when(text, NOW)
    assert when is not None, text
    assert (when.at, when.has_time) == (at, has_time)


@pytest.mark.parametrize("text", ["", "   ", "随便", "越快越好", "下个月吧", "13月5日", "2月30日", "25点", "hello"])
def test_parse_when_nonsense_is_none(text: str) -> None:
    assert parse_when(text, NOW) is None


@pytest.mark.parametrize(("text", "past"), [
    ("今天早上8点", True),
    ("今天上午9点58分", False),  # a few minutes late is still fine
    ("今天上午9点50分", True),
    ("今天上午", False),  # the morning is not over yet
    ("今天早上", False),
    ("今天凌晨", True),
    ("今天", False),
    ("11月20日", True),
    ("明天上午9点", False),
])
def test_is_past(text: str, past: bool) -> None:
    when = parse_when(text, NOW)
    assert when is not None
    assert is_past(when, NOW) is past


def test_is_past_direct() -> None:
    assert is_past(When(datetime(2026, 11, 21, 23, 0), False), NOW)
    assert not is_past(When(datetime(2026, 11, 22, 0, 0), False), NOW)
    assert is_past(When(datetime(2026, 11, 22, 6, 0), False, "上午"), datetime(2026, 11, 22, 13, 0))


@pytest.mark.parametrize(("s", "n"), [("12", 12), ("十二", 12), ("二十", 20), ("三十五", 35), ("两", 2), ("十", 10),
                                      ("零", 0), ("", None), ("十十", None), ("abc", None)])
def test_cn_number(s: str, n: int | None) -> None:
    assert cn_number(s) == n


def test_format_when() -> None:
    at = datetime(2026, 11, 24, 8, 30)
    assert format_when(at, True, None, "zh_CN") == "11月24日（周二）08:30"
    assert format_when(at, False, "下午", "zh_CN") == "11月24日（周二） 下午"
    assert format_when(at, False, None, "zh_CN") == "11月24日（周二）"
    assert format_when(at, True, None, "en") == "Tue 11/24 08:30"
    assert format_when(at, False, "早晨", "en") == "Tue 11/24 morning"


# ---- phones -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "phone", "problem"), [
    ("13812345678", "13812345678", ""),
    ("138 1234 5678", "13812345678", ""),
    ("138-1234-5678", "13812345678", ""),
    ("+8613812345678", "13812345678", ""),
    ("008613812345678", "13812345678", ""),
    ("010-12345678", "01012345678", ""),
    ("(0571)87654321", "057187654321", ""),
    ("1381234567", None, "short"),
    ("138123456789", None, "long"),
    ("12812345678", None, "bad"),  # 11 digits, but not a mobile number: not "too many digits"
    ("1381234567a", None, "bad"),
    ("电话13812345678", None, "bad"),
    ("", None, "bad"),
    ("12345", None, "short"),
    ("88886666", None, "bad"),  # a landline without its area code
])
def test_check_phone(raw: str, phone: str | None, problem: str) -> None:
    assert check_phone(raw) == (phone, problem)


def test_mask_phone() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("01012345678") == "010****5678"
    assert mask_phone("1234567") == "****"
    assert mask_phone("") == "****"


# ---- callbacks --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("action", "target", "arg"), [
    ("claim", 7, ""), ("rate", 123456789, 5), ("i", "forwhom", "self"), ("i", "station", "s-guangming"),
    ("hoursok", 1, ""), ("nocomment", 42, ""),
])
def test_callback_round_trip(action: str, target: object, arg: object) -> None:
    data = callbacks.make(action, target, arg)
    assert len(data.encode()) <= callbacks.MAX_BYTES
    assert callbacks.parse(data) == callbacks.Callback(action, str(target), str(arg))


def test_callback_64_byte_limit() -> None:
    ok = callbacks.make("i", "x", "a" * (64 - len("v1:i:x:")))
    assert len(ok.encode()) == 64 and callbacks.parse(ok) is not None
    with pytest.raises(ValueError):
        callbacks.make("i", "x", "a" * (65 - len("v1:i:x:")))
    with pytest.raises(ValueError):
        callbacks.make("i", "x", "社" * 20)  # 60 bytes of UTF-8 on top of the prefix
    assert callbacks.parse("v1:i:x:" + "a" * 60) is None


@pytest.mark.parametrize(("action", "target", "arg"), [
    ("bad:action", 1, ""), ("", 1, ""), ("claim", "", ""), ("claim", "a:b", ""), ("rate", 1, "x:y"),
])
def test_callback_malformed_is_refused(action: str, target: object, arg: object) -> None:
    with pytest.raises(ValueError):
        callbacks.make(action, target, arg)


@pytest.mark.parametrize("data", ["abc", "v2:x:1", "", None, "v1", "v1:claim", "v1::1", "v1:claim:", "v1:a:b:c:d",
                                  ":::", "V1:claim:1", "x" * 65])
def test_callback_foreign_data_is_none(data: str | None) -> None:
    assert callbacks.parse(data) is None


# ---- safety -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["我不想活了", "活着没意思", "我想自杀", "想结束自己的生命", "I want to kill myself",
                                  "thinking about suicide"])
def test_self_harm_words(text: str) -> None:
    assert safety.detect(text) == "self_harm"


@pytest.mark.parametrize("text", ["我妈晕倒了", "老人摔倒了起不来", "他喘不上气", "我爸心脏病犯了", "他好像中风了",
                                  "she is unconscious", "HEART ATTACK"])
def test_medical_words(text: str) -> None:
    assert safety.detect(text) == "medical"


@pytest.mark.parametrize("text", [None, "", "你好", "需要陪同去医院复查", "帮我买菜", "打扫卫生",
                                  "我妈腿不好，要去人民医院拿药复查", "我爸中风后行动不便，需要人陪同复查",
                                  "孩子作业辅导", "取消", "13812345678"])
def test_ordinary_requests_are_not_crises(text: str | None) -> None:
    assert safety.detect(text) is None


# ---- request lifecycle ------------------------------------------------------------------------------------

ALLOWED = {
    "claim": {rq.OPEN},
    "assign": {rq.OPEN},
    "release": {rq.CLAIMED, rq.STARTED},
    "start": {rq.CLAIMED},
    "finish": {rq.CLAIMED, rq.STARTED},
    "cancel": {rq.OPEN, rq.CLAIMED},
    "escalate": {rq.OPEN},
}
STATUSES = (rq.OPEN, rq.CLAIMED, rq.STARTED, rq.FINISHED, rq.CANCELLED)


@pytest.mark.parametrize("action", sorted(ALLOWED))
@pytest.mark.parametrize("status", STATUSES)
def test_allowed_transitions(action: str, status: str) -> None:
    assert rq.allowed(action, status) is (status in ALLOWED[action])


def test_next_status() -> None:
    assert {a: rq.next_status(a) for a in ALLOWED} == {
        "claim": rq.CLAIMED, "assign": rq.CLAIMED, "release": rq.OPEN, "start": rq.STARTED,
        "finish": rq.FINISHED, "cancel": rq.CANCELLED, "escalate": rq.OPEN}


def test_finished_and_cancelled_are_final() -> None:
    for status in (rq.FINISHED, rq.CANCELLED):
        assert not any(rq.allowed(a, status) for a in rq.TRANSITIONS)


# ---- rendering --------------------------------------------------------------------------------------------

VIEW = rq.RequestView(
    id=7, number="20261122-0007", status=rq.OPEN, category="为老服务", service="陪同就医", community="幸福社区",
    when_text="11月24日（周二）08:30", urgent=False, team_name="幸福社区为老服务队",
    address="幸福路12号3单元401室ZZADDR", phone="13987654321", description="腿不好要去医院复查ZZDESC",
    for_whom="family", resident_name="王秀英ZZNAME",
)
PERSONAL = ("13987654321", "987654321", "幸福路12号", "ZZADDR", "ZZDESC", "腿不好", "王秀英", "ZZNAME")


def _all_text(msg: rq.Message) -> str:
    return msg.text + "\n" + "\n".join(f"{b.text} {b.data}" for b in msg.flat_buttons())


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("render", [rq.group_card, rq.nudge, rq.reminder])
def test_group_texts_never_show_personal_details(locale: str, status: str, render: object) -> None:
    view = replace(VIEW, status=status, volunteer_name=None if status == rq.OPEN else "李明")
    text = _all_text(render(view, locale))  # type: ignore[operator]
    for secret in PERSONAL:
        assert secret not in text, (secret, text)


def test_open_group_card() -> None:
    msg = rq.group_card(VIEW, "zh_CN")
    for part in ("为老服务", "陪同就医", "20261122-0007", "幸福社区", "11月24日（周二）08:30", "一般"):
        assert part in msg.text
    assert msg.text.splitlines()[0] == "【为老服务 · 陪同就医】 编号 20261122-0007"
    assert [(b.text, b.data) for b in msg.flat_buttons()] == [("接单", "v1:claim:7")]
    assert "紧急" in rq.group_card(replace(VIEW, urgent=True), "zh_CN").text
    assert "上级转派" in rq.group_card(replace(VIEW, escalated=True), "zh_CN").text


def test_claimed_group_card_shows_the_volunteer_and_no_button() -> None:
    msg = rq.group_card(replace(VIEW, status=rq.CLAIMED, volunteer_name="李明"), "zh_CN")
    assert "✅ 已由 李明 接单" in msg.text and "幸福社区" in msg.text
    assert msg.buttons == ()
    for status, words in ((rq.STARTED, "李明 已出发"), (rq.FINISHED, "李明 已完成"), (rq.CANCELLED, "居民已取消")):
        msg = rq.group_card(replace(VIEW, status=status, volunteer_name="李明"), "zh_CN")
        assert words in msg.text and msg.buttons == ()


def test_english_group_card() -> None:
    msg = rq.group_card(replace(VIEW, category="Elderly care", service="Doctor visit escort"), "en")
    assert msg.text.startswith("[Elderly care · Doctor visit escort] No. 20261122-0007")
    assert [b.text for b in msg.flat_buttons()] == ["Take it"]


def test_details_for_the_claimer() -> None:
    msg = rq.details(replace(VIEW, status=rq.CLAIMED, volunteer_name="李明"), "zh_CN")
    for part in ("13987654321", "幸福路12号3单元401室ZZADDR", "腿不好要去医院复查ZZDESC", "王秀英ZZNAME", "家里人",
                 "幸福社区"):
        assert part in msg.text
    assert [(b.text, b.data) for b in msg.flat_buttons()] == [
        ("出发", "v1:start:7"), ("完成服务", "v1:finish:7"), ("无法前往，退回", "v1:release:7")]
    started = rq.details(replace(VIEW, status=rq.STARTED, volunteer_name="李明"), "zh_CN")
    assert [b.data for b in started.flat_buttons()] == ["v1:finish:7", "v1:release:7"]


@pytest.mark.parametrize(("status", "words"), [(rq.FINISHED, "已完成服务"), (rq.CANCELLED, "居民已取消"),
                                               (rq.OPEN, "已退回")])
def test_details_when_no_longer_active(status: str, words: str) -> None:
    msg = rq.details(replace(VIEW, status=status), "zh_CN")
    assert words in msg.text and msg.buttons == ()


def test_resident_list_offers_cancel_only_while_cancellable() -> None:
    views = [replace(VIEW, id=i, number=f"20261122-000{i}", status=s, volunteer_name="李明")
             for i, s in enumerate(STATUSES, 1)]
    msg = rq.resident_list(views, "zh_CN")
    assert msg.text.splitlines()[0] == t("zh_CN", "mine.head")
    assert "等待志愿者接单" in msg.text and "已由志愿者李明接单" in msg.text and "已完成" in msg.text
    assert [(b.text, b.data) for b in msg.flat_buttons()] == [("取消 …0001", "v1:cancel:1"),
                                                              ("取消 …0002", "v1:cancel:2")]
    empty = rq.resident_list([], "zh_CN")
    assert empty.text == t("zh_CN", "mine.empty") and empty.buttons == ()


def test_rating_prompt_has_five_star_buttons() -> None:
    msg = rq.rating_prompt(replace(VIEW, status=rq.FINISHED, volunteer_name="李明"), "zh_CN")
    assert "李明" in msg.text and "20261122-0007" in msg.text
    buttons = msg.flat_buttons()
    assert [b.data for b in buttons] == [f"v1:rate:7:{n}" for n in range(1, 6)]
    assert [b.text for b in buttons] == ["⭐" * n for n in range(1, 6)]
    assert [callbacks.parse(b.data) for b in buttons] == [callbacks.Callback("rate", "7", str(n)) for n in range(1, 6)]


def test_hours_prompt_and_fmt_hours() -> None:
    msg = rq.hours_prompt(VIEW, 1.5, "zh_CN")
    assert "1.5 小时" in msg.text
    assert [b.data for b in msg.flat_buttons()] == ["v1:hoursok:7", "v1:hourset:7"]
    assert (rq.fmt_hours(2.0), rq.fmt_hours(1.5), rq.fmt_hours(0.25)) == ("2", "1.5", "0.2")


def test_masked() -> None:
    assert rq.masked(VIEW) == "139****4321"


@pytest.mark.parametrize(("hours", "level"), [(0, 0), (99.5, 0), (100, 1), (299, 1), (300, 2), (599.9, 2),
                                              (600, 3), (1000, 4), (1499, 4), (1500, 5), (10000, 5)])
def test_star_level_with_default_thresholds(hours: float, level: int) -> None:
    assert rq.star_level(hours, RecognitionConfig().star_thresholds) == level


def test_small_hours_without_part_of_day_mean_afternoon() -> None:
    now = datetime(2026, 11, 22, 10, 0)
    assert parse_when("两点半", now) == When(datetime(2026, 11, 22, 14, 30), True, None)
    assert parse_when("凌晨两点", now) == When(datetime(2026, 11, 23, 2, 0), True, "凌晨")
    assert parse_when("02:30", now) == When(datetime(2026, 11, 23, 2, 30), True, None)


def test_half_hours_round_halves_up() -> None:
    assert rq.half_hours(1.25) == 1.5  # 75 minutes
    assert rq.half_hours(1.24) == 1.0
    assert rq.half_hours(0.75) == 1.0
    assert rq.half_hours(2.0) == 2.0
