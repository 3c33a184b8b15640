"""Transcript tests of the resident's help-request form (flows/intake.py), with no I/O at all."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_config
from flows import intake
from flows.types import Button, Draft, UserInput

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_config(ROOT / "config.yaml")
CATALOG = CONFIG.catalog()
UNIT = CONFIG.org.center.name
NOW = datetime(2026, 11, 22, 10, 0)  # a Sunday morning


def make_ctx(**kw: Any) -> intake.Context:
    kw.setdefault("greeting_unit", UNIT)
    return intake.Context(catalog=CATALOG, now=NOW, **kw)


@dataclasses.dataclass(frozen=True)
class Pick:
    """Choose the button with this label in the previous reply: by pressing it, typing its words or its
    number, depending on how the transcript is run."""

    label: str


@dataclasses.dataclass(frozen=True)
class Press:
    """Press the button with this label in the previous reply (always a press)."""

    label: str


Step = str | Pick | Press | UserInput


class Chat:
    """One resident filling in the form; the state goes through JSON each turn as it does in storage."""

    def __init__(self, ctx: intake.Context | None = None, mode: str = "press") -> None:
        self.ctx = ctx or make_ctx()
        self.mode = mode
        self.result = intake.start(self.ctx)
        self.state: dict[str, Any] | None = self.result.state
        self.history: list[intake.Result] = [self.result]

    @property
    def reply(self) -> str:
        return "\n".join(m.text for m in self.result.messages)

    @property
    def buttons(self) -> list[Button]:
        return [b for m in self.result.messages for b in m.flat_buttons()]

    @property
    def labels(self) -> list[str]:
        return [b.text for b in self.buttons]

    @property
    def draft(self) -> dict[str, Any]:
        assert self.state is not None
        return self.state["draft"]

    @property
    def step_name(self) -> str | None:
        return self.state["step"] if self.state else None

    def button(self, label: str) -> Button:
        found = [b for b in self.buttons if b.text == label]
        assert found, f"no button {label!r} in the last reply; buttons: {self.labels}"
        return found[0]

    def to_input(self, what: Step) -> UserInput:
        if isinstance(what, UserInput):
            return what
        if isinstance(what, str):
            return UserInput(text=what)
        button = self.button(what.label)
        if isinstance(what, Press) or self.mode == "press":
            return UserInput(data=button.data)
        if self.mode == "words":
            return UserInput(text=what.label)
        if self.mode == "number":
            return UserInput(text=str(self.buttons.index(button) + 1))
        raise AssertionError(self.mode)

    def send(self, what: Step) -> intake.Result:
        assert self.state is not None, "the form is already over"
        inp = self.to_input(what)
        state = json.loads(json.dumps(self.state, ensure_ascii=False))  # as stored between turns
        self.result = intake.step(state, inp, self.ctx)
        self.history.append(self.result)
        self.state = self.result.state
        return self.result


def run(chat: Chat, transcript: list[tuple[Step, str | tuple[str, ...]]]) -> Chat:
    """Send each input and check that the reply contains the expected substring(s)."""
    for n, (what, expected) in enumerate(transcript):
        chat.send(what)
        for part in (expected,) if isinstance(expected, str) else expected:
            assert part in chat.reply, f"turn {n} ({what!r}): {part!r} not in reply {chat.reply!r}"
    return chat


def fill_to(chat: Chat, step: str) -> Chat:
    """Answer the form as in the CONVERSATION.md example (buttons by their number, so in any locale) until
    `step` is asked."""
    answers = {"category": "1", "service": "3", "station": "1", "for_whom": "2",
               "when": "3", "when_date": "后天早上八点半", "address": "幸福路12号3单元401",
               "phone": "13812345678", "description": "我妈腿不好，要去人民医院拿药复查"}
    while chat.step_name != step:
        assert chat.step_name in answers, f"cannot reach {step!r} from {chat.step_name!r}"
        chat.send(answers[chat.step_name])
    return chat


# ---- the example of CONVERSATION.md ------------------------------------------------------------------

EXAMPLE: list[tuple[Step, str | tuple[str, ...]]] = [
    (Pick("为老服务"), "需要哪项服务"),
    (Pick("陪同就医"), "您住在哪个社区"),
    (Pick("幸福社区"), "这次是为谁申请"),
    (Pick("家里人"), "什么时候需要"),
    (Pick("选日期"), "请输入日期和时间"),
    ("后天早上八点半", ("好的，11月24日（周二）08:30。", "上门地址")),
    ("幸福路12号3单元401", "联系电话"),
    ("1381234567", "这个号码好像少了一位"),
    ("13812345678", "请简单说说情况"),
    ("我妈腿不好，要去人民医院拿药复查", (
        "请确认", "服务：为老服务 · 陪同就医", "社区：幸福社区", "对象：家里人", "时间：11月24日（周二）08:30",
        "地址：幸福路12号3单元401", "电话：138****5678", "情况：我妈腿不好，要去人民医院拿药复查")),
]

EXPECTED_DRAFT = Draft(category="elderly", service="escort", station="s-xingfu", for_whom="family",
                       when_kind="at", when_at="2026-11-24T08:30", when_text="11月24日（周二）08:30",
                       address="幸福路12号3单元401", phone="13812345678",
                       description="我妈腿不好，要去人民医院拿药复查", urgent=False)


@pytest.mark.parametrize("mode", ["press", "words", "number"])
def test_happy_path_of_the_example(mode: str) -> None:
    chat = Chat(mode=mode)
    assert "您好！这里是幸福县新时代文明实践中心志愿服务。" in chat.reply
    assert "请问需要哪方面的帮助" in chat.reply
    assert chat.labels == ["为老服务", "为小服务", "困难帮扶", "心理疏导", "我的求助"]  # 公共服务 is not offered
    run(chat, EXAMPLE)
    assert chat.labels == ["确认提交", "修改", "取消"]
    res = chat.send(Pick("确认提交"))
    assert res.state is None and not res.cancelled and res.action is None
    assert res.submit == EXPECTED_DRAFT


def test_submitted_draft_has_every_field() -> None:
    chat = run(Chat(), EXAMPLE)
    draft = chat.send(Press("确认提交")).submit
    assert draft is not None
    for f in dataclasses.fields(Draft):
        if f.name not in ("urgent", "extra"):
            assert getattr(draft, f.name), f"{f.name} is empty"


def test_asap_is_urgent_and_today_is_not() -> None:
    chat = fill_to(Chat(), "when")
    run(chat, [(Press("越快越好"), "上门地址")])
    assert chat.draft["when_kind"] == "asap" and chat.draft["urgent"] is True
    assert chat.draft["when_at"] == "2026-11-22T10:00"
    chat = fill_to(Chat(), "when")
    run(chat, [("今天", "上门地址")])
    assert chat.draft["when_kind"] == "today" and chat.draft["urgent"] is False


def test_a_time_typed_at_the_when_question_is_used() -> None:
    chat = fill_to(Chat(), "when")
    run(chat, [("明天上午9点", ("好的，11月23日（周一）09:00。", "上门地址"))])
    assert chat.draft["when_at"] == "2026-11-23T09:00"
    # 今天 is also a button's word, but 今天下午3点 is a time, not just "today"
    chat = fill_to(Chat(), "when")
    run(chat, [("今天下午3点", ("好的，11月22日（周日）15:00。", "上门地址"))])
    assert chat.draft["when_kind"] == "at" and chat.draft["when_at"] == "2026-11-22T15:00"


def test_summary_masks_the_phone() -> None:
    chat = fill_to(Chat(), "summary")
    assert "138****5678" in chat.reply
    assert "13812345678" not in chat.reply


def test_every_message_says_something() -> None:
    chat = run(Chat(), EXAMPLE)
    for res in chat.history:
        assert res.messages and all(m.text.strip() for m in res.messages)


# ---- answers that do not fit ---------------------------------------------------------------------------

def test_phone_missing_a_digit_is_asked_again_and_earlier_answers_are_kept() -> None:
    chat = fill_to(Chat(), "phone")
    before = dict(chat.draft)
    run(chat, [("1381234567", "这个号码好像少了一位，请再输入一次11位手机号")])
    assert chat.step_name == "phone" and chat.draft == before
    run(chat, [("138123456789", "多了几位"), ("电话是多少", "请输入11位手机号"), ("138 1234 5678", "请简单说说情况")])
    assert chat.draft["phone"] == "13812345678"
    assert {k: v for k, v in chat.draft.items() if k != "phone"} == {k: v for k, v in before.items() if k != "phone"}


def test_shared_contact_and_landline_are_accepted() -> None:
    chat = fill_to(Chat(), "phone")
    chat.send(UserInput(contact_phone="+86 138-1234-5678"))
    assert chat.step_name == "description" and chat.draft["phone"] == "13812345678"
    chat = fill_to(Chat(), "phone")
    chat.send("010-12345678")
    assert chat.step_name == "description" and chat.draft["phone"] == "01012345678"


@pytest.mark.parametrize(("typed", "expected"), [
    ("11月20日上午9点", "这个时间已经过去了"),
    ("今天早上8点", "这个时间已经过去了"),
    ("随便什么时候", "没看懂这个时间"),
    ("下个月吧", "没看懂这个时间"),
    ("2027-06-01 9:00", "三个月以内"),
])
def test_dates_that_do_not_fit_are_explained_and_asked_again(typed: str, expected: str) -> None:
    chat = fill_to(Chat(), "when_date")
    before = dict(chat.draft)
    run(chat, [(typed, expected)])
    assert chat.step_name == "when_date" and chat.draft == before
    run(chat, [("后天早上八点半", "上门地址")])
    assert chat.draft["when_at"] == "2026-11-24T08:30"


def test_address_too_short_or_too_long() -> None:
    chat = fill_to(Chat(), "address")
    run(chat, [("12号", "请输入详细地址"), ("幸" * 201, "200个字以内")])
    assert chat.step_name == "address" and chat.draft["address"] is None
    run(chat, [("幸福路12号3单元401", "联系电话")])
    assert chat.draft["address"] == "幸福路12号3单元401"


def test_shared_location_is_an_address() -> None:
    chat = fill_to(Chat(), "address")
    chat.send(UserInput(location="幸福路12号（定位）"))
    assert chat.step_name == "phone" and chat.draft["address"] == "幸福路12号（定位）"


def test_description_too_short_or_too_long() -> None:
    chat = fill_to(Chat(), "description")
    run(chat, [("嗯", "请用一两句话说说需要什么帮助"), ("腿" * 501, "500个字以内")])
    assert chat.step_name == "description" and chat.draft["description"] is None
    run(chat, [("腿" * 500, "请确认")])


@pytest.mark.parametrize(("step", "typed", "hint", "question"), [
    ("category", "帮帮我", "请点下面的按钮", "请问需要哪方面的帮助"),
    ("category", "9", "请点下面的按钮", "请问需要哪方面的帮助"),
    ("service", "修水管", "请点下面的按钮", "需要哪项服务"),
    ("station", "火星基地", "没有找到这个社区", "您住在哪个社区"),
    ("for_whom", "邻居", "请点下面的按钮", "这次是为谁申请"),
    ("when", "尽量吧", "请点下面的按钮", "什么时候需要"),
    ("summary", "好的吧", "请点下面的按钮", "请确认"),
])
def test_text_where_a_button_is_expected_gets_the_hint_and_the_same_question(
        step: str, typed: str, hint: str, question: str) -> None:
    chat = fill_to(Chat(), step)
    labels, draft = chat.labels, dict(chat.draft)
    run(chat, [(typed, (hint, question))])
    assert chat.step_name == step and chat.labels == labels and chat.draft == draft


def test_station_can_be_typed_in_part() -> None:
    chat = fill_to(Chat(), "station")
    run(chat, [("光明", "这次是为谁申请")])
    assert chat.draft["station"] == "s-guangming"


def test_help_explains_and_asks_again() -> None:
    chat = fill_to(Chat(), "for_whom")
    run(chat, [("帮助", ("按提示一步一步回答", "这次是为谁申请"))])
    assert chat.step_name == "for_whom" and chat.labels == ["我自己", "家里人"]


# ---- ways out and back ---------------------------------------------------------------------------------

@pytest.mark.parametrize("step", ["category", "service", "station", "when", "when_date", "address", "phone",
                                  "description", "summary"])
@pytest.mark.parametrize("word", ["取消", "不要了", "/cancel", "Cancel"])
def test_cancel_at_any_step(step: str, word: str) -> None:
    chat = fill_to(Chat(), step)
    res = chat.send(word)
    assert res.cancelled and res.state is None and res.submit is None
    assert "已取消" in chat.reply


def test_cancel_button_on_the_summary() -> None:
    chat = fill_to(Chat(), "summary")
    res = chat.send(Press("取消"))
    assert res.cancelled and res.state is None and res.submit is None and "已取消" in chat.reply


def test_back_goes_back_one_step_and_keeps_answers() -> None:
    chat = fill_to(Chat(), "service")
    run(chat, [("返回", "请问需要哪方面的帮助")])
    assert chat.step_name == "category" and chat.draft["category"] == "elderly"
    chat = fill_to(Chat(), "phone")
    run(chat, [("返回", "上门地址")])
    assert chat.step_name == "address" and chat.draft["address"] == "幸福路12号3单元401"
    run(chat, [("返回", "什么时候需要"), ("上一步", "这次是为谁申请"), ("back", "您住在哪个社区")])
    assert chat.draft["when_at"] == "2026-11-24T08:30"  # still known
    run(chat, [(Press("和平村"), "这次是为谁申请")])
    assert chat.draft["station"] == "s-heping"


def test_back_on_the_first_question_is_harmless() -> None:
    chat = Chat()
    run(chat, [("返回", ("请点下面的按钮", "请问需要哪方面的帮助"))])
    assert chat.step_name == "category"


def test_back_from_the_date_question_and_after_it() -> None:
    chat = fill_to(Chat(), "when_date")
    run(chat, [("返回", "什么时候需要")])
    chat = fill_to(Chat(), "address")
    run(chat, [("返回", "什么时候需要"), ("返回", "这次是为谁申请")])


def test_edit_a_field_from_the_summary() -> None:
    chat = fill_to(Chat(), "summary")
    run(chat, [
        (Press("修改"), "想修改哪一项"),
        (Press("电话"), "联系电话"),
        ("13900001111", ("请确认", "电话：139****1111", "地址：幸福路12号3单元401", "对象：家里人",
                         "时间：11月24日（周二）08:30", "情况：我妈腿不好")),
    ])
    assert chat.step_name == "summary"
    res = chat.send(Press("确认提交"))
    assert res.submit == dataclasses.replace(EXPECTED_DRAFT, phone="13900001111")


def test_edit_by_typing() -> None:
    chat = fill_to(Chat(), "summary")
    run(chat, [("修改", "想修改哪一项"), ("地址", "上门地址"),
               ("幸福路14号1单元101", ("请确认", "地址：幸福路14号1单元101"))])
    run(chat, [("2", "想修改哪一项"), ("3", "您住在哪个社区"), ("和平村", ("请确认", "社区：和平村"))])
    assert chat.draft["address"] == "幸福路14号1单元101" and chat.draft["station"] == "s-heping"


def test_edit_the_time_goes_through_the_date_question() -> None:
    chat = fill_to(Chat(), "summary")
    run(chat, [(Press("修改"), "想修改哪一项"), (Press("时间"), "什么时候需要"), (Press("选日期"), "请输入日期"),
               ("11月25日下午2点", ("好的，11月25日（周三）14:00。", "请确认", "时间：11月25日（周三）14:00"))])
    assert chat.draft["when_at"] == "2026-11-25T14:00"
    run(chat, [(Press("修改"), "想修改哪一项"), (Press("时间"), "什么时候需要"), (Press("越快越好"), "时间：越快越好")])
    assert chat.draft["urgent"] is True


def test_edit_the_category_asks_the_service_again() -> None:
    chat = fill_to(Chat(), "summary")
    run(chat, [(Press("修改"), "想修改哪一项"), (Press("类别"), "请问需要哪方面的帮助"),
               (Press("困难帮扶"), "需要哪项服务"), (Press("法律援助"), ("请确认", "服务：困难帮扶 · 法律援助",
                                                                    "地址：幸福路12号3单元401"))])
    assert (chat.draft["category"], chat.draft["service"]) == ("hardship", "legal")


def test_back_from_the_edit_menu_returns_to_the_summary() -> None:
    chat = fill_to(Chat(), "summary")
    run(chat, [(Press("修改"), "想修改哪一项"), ("返回", "请确认")])
    assert chat.step_name == "summary"
    run(chat, [(Press("修改"), "想修改哪一项"), (Press("地址"), "上门地址"), ("返回", "想修改哪一项"),
               ("返回", "请确认")])
    res = chat.send(Press("确认提交"))
    assert res.submit == EXPECTED_DRAFT


# ---- context and shortcuts -----------------------------------------------------------------------------

def test_station_hint_from_a_qr_code_skips_the_station_question() -> None:
    chat = Chat(make_ctx(station_hint="s-guangming"))
    run(chat, [(Press("为老服务"), "需要哪项服务"), (Press("送餐助餐"), "这次是为谁申请")])
    assert chat.draft["station"] == "s-guangming"
    run(chat, [("返回", "需要哪项服务")])
    fill_to(chat, "summary")
    assert "社区：光明社区" in chat.reply
    assert chat.send(Press("确认提交")).submit.station == "s-guangming"  # type: ignore[union-attr]


def test_unknown_station_hint_is_ignored() -> None:
    chat = Chat(make_ctx(station_hint="s-nowhere"))
    run(chat, [(Press("为老服务"), "需要哪项服务"), (Press("送餐助餐"), "您住在哪个社区")])


@pytest.mark.parametrize("how", [Press("我的求助"), "我的求助", "5"])
def test_my_requests_on_the_category_menu(how: Step) -> None:
    chat = Chat()
    res = chat.send(how)
    assert res.action == "my_requests" and res.state is None and res.submit is None and not res.cancelled


# ---- buttons that do not belong -----------------------------------------------------------------------

def test_stale_button_from_an_earlier_step_is_not_applied() -> None:
    chat = Chat()
    old_category = chat.button("为小服务").data
    run(chat, [(Press("为老服务"), "需要哪项服务"), (Press("陪同就医"), "您住在哪个社区")])
    old_service = chat.history[1].messages[-1].flat_buttons()[0].data  # 送餐助餐
    for data in (old_category, old_service):
        run(chat, [(UserInput(data=data), ("请点下面的按钮", "您住在哪个社区"))])
        assert chat.step_name == "station"
        assert (chat.draft["category"], chat.draft["service"]) == ("elderly", "escort")
    old_station = chat.button("光明社区").data
    fill_to(chat, "address")
    run(chat, [(UserInput(data=old_station), "请输入详细地址")])
    assert chat.step_name == "address" and chat.draft["station"] == "s-xingfu"
    fill_to(chat, "summary")
    run(chat, [(UserInput(data=old_category), ("请点下面的按钮", "请确认"))])
    assert chat.step_name == "summary" and chat.draft["category"] == "elderly"


def test_old_edit_menu_button_on_the_summary_is_not_applied() -> None:
    chat = fill_to(Chat(), "summary")
    run(chat, [(Press("修改"), "想修改哪一项")])
    edit_phone = chat.button("电话").data
    run(chat, [(Press("电话"), "联系电话"), ("13900001111", "请确认")])
    run(chat, [(UserInput(data=edit_phone), ("请点下面的按钮", "请确认"))])
    assert chat.step_name == "summary"


GARBAGE = ["abc", "v2:x:1", "", "v1:claim:5", "v1:i:category", "v1:i:category:nonexistent", "v1:i:service:meal",
           "v1:i:category:public", "v1::category:elderly", "v1:i:category:elderly:extra", "x" * 100, "v1:i:" + "é" * 40,
           ":::", "v1:i:category:mine:"]


@pytest.mark.parametrize("data", GARBAGE)
def test_foreign_or_garbage_button_data_is_handled_gracefully(data: str) -> None:
    chat = Chat()
    run(chat, [(UserInput(data=data), "请问需要哪方面的帮助")])
    assert chat.step_name == "category" and chat.draft["category"] is None
    assert chat.labels == ["为老服务", "为小服务", "困难帮扶", "心理疏导", "我的求助"]


@pytest.mark.parametrize("data", GARBAGE)
@pytest.mark.parametrize("step", ["when_date", "address", "phone", "description", "summary", "edit"])
def test_garbage_data_at_typed_steps_changes_nothing(data: str, step: str) -> None:
    chat = fill_to(Chat(), "summary")
    if step == "edit":
        chat.send(Press("修改"))
    else:
        chat.state = {**chat.state, "step": step}  # type: ignore[dict-item]
    before = json.dumps(chat.state, ensure_ascii=False)
    res = chat.send(UserInput(data=data))
    assert res.state is not None and res.submit is None and not res.cancelled and res.messages
    assert json.dumps(res.state, ensure_ascii=False) == before


def test_empty_input_is_not_an_answer() -> None:
    chat = fill_to(Chat(), "address")
    run(chat, [(UserInput(), "请输入详细地址"), ("   ", "请输入详细地址")])
    assert chat.step_name == "address"


# ---- English --------------------------------------------------------------------------------------------

def test_english_locale_asks_in_english() -> None:
    chat = Chat(make_ctx(locale="en"), mode="words")
    assert "Hello!" in chat.reply and "What kind of help do you need?" in chat.reply
    assert chat.labels == ["Elderly care", "Children", "Help in hardship", "Psychological support", "My requests"]
    run(chat, [
        (Pick("Elderly care"), "Which service do you need?"),
        (Pick("Doctor visit escort"), "Which community do you live in?"),
        (Pick("幸福社区"), "Who is this request for?"),
        (Pick("My family"), "When do you need it?"),
        (Pick("Choose a date"), "Please type the date and time"),
        ("nonsense", "Sorry, I didn't understand that time"),
        ("11/24 8:30", ("OK, Tue 11/24 08:30.", "address")),
        ("幸福路12号3单元401", "phone number"),
        ("1381234567", "missing a digit"),
        ("13812345678", "Please tell us briefly"),
        ("My mother needs to see a doctor", ("Please check:", "Elderly care · Doctor visit escort",
                                             "Phone: 138****5678", "Time: Tue 11/24 08:30", "For: My family")),
    ])
    assert chat.labels == ["Confirm and send", "Change", "Cancel"]
    for text in chat.reply, *(m.text for r in chat.history for m in r.messages):
        assert not any("\u4e00" <= c <= "\u9fff" for c in text.replace("幸福社区", "").replace("幸福路12号3单元401", "")
                       .replace("幸福县新时代文明实践中心", "").replace("明天上午9点", "")), text
    res = chat.send("1")
    assert res.submit is not None and res.submit.when_text == "Tue 11/24 08:30"


def test_english_cancel_and_period_without_time() -> None:
    chat = fill_to(Chat(make_ctx(locale="en")), "when_date")
    run(chat, [("周二下午", ("OK, Tue 11/24 afternoon.", "address"))])
    res = chat.send("quit")
    assert res.cancelled and "Cancelled" in chat.reply


def test_changed_category_must_get_a_service_before_submitting() -> None:
    """Going back after changing the category cannot submit a request without a service."""
    chat = Chat()
    for answer in ("为老服务", "送餐助餐", "幸福社区", "我自己", "越快越好", "幸福路12号", "13812345678", "需要送饭"):
        chat.send(answer)
    assert chat.state is not None and chat.step_name == "summary"
    state = dict(chat.state)
    state["draft"] = {**state["draft"], "service": None}  # as left by 修改 → 类别 → 返回 …
    chat.state = state
    res = chat.send("确认提交")
    assert res.submit is None and chat.state["step"] == "service"
