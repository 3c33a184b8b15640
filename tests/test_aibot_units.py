"""The smart robot's pure pieces (cards, mentions, click shapes) and the lease behind its election."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from bot.channels.wecom_bot import cards
from bot.leader import Lease
from flows.types import Button, Message
from storage.db import Database
from tests.conftest import Backend
from tests.fakes.aibot import TASK_ID_RE, FakeAibot


def test_mentions_are_stripped_before_commands() -> None:
    assert cards.strip_mention("@五为助手 /bind t-xingfu-elderly") == "/bind t-xingfu-elderly"
    assert cards.strip_mention("  @五为 助手 /unbind") == "/unbind"  # a robot name with a space
    assert cards.strip_mention("@五为助手\u2005/bind t-1") == "/bind t-1"  # WeCom puts U+2005 after @name
    assert cards.strip_mention("/bind t-1") == "/bind t-1"
    assert cards.strip_mention("@五为助手 你好") == "你好"


def test_clicks_are_read_nested_and_flat() -> None:
    nested = {"eventtype": "template_card_event",
              "template_card_event": {"card_type": "button_interaction", "event_key": "v1:claim:7", "task_id": "c1"}}
    flat = {"eventtype": "template_card_event", "card_type": "button_interaction", "event_key": "v1:claim:7",
            "task_id": "c1"}
    assert cards.card_click(nested) == cards.card_click(flat) == cards.CardClick("c1", "v1:claim:7")
    assert cards.card_click({"eventtype": "template_card_event"}) is None


def test_template_card_fits_the_platform_limits() -> None:
    buttons = tuple((Button(f"很长很长的按钮文字第{i}个", f"v1:x:{i}"),) for i in range(8))
    msg = Message("【为老服务 · 陪同就医】 编号 20261123-0001\n社区：幸福社区    时间：明天\n", buttons)
    task_id = cards.new_task_id()
    card = cards.template_card(msg, task_id, "已结束")
    assert TASK_ID_RE.match(task_id) and cards.is_card_id(task_id)
    assert FakeAibot._card_ok(card)
    assert len(card["button_list"]) == 6 and all(len(b["text"]) <= 10 for b in card["button_list"])
    assert card["main_title"] == {"title": "【为老服务 · 陪同就医】", "desc": "编号 20261123-0001"}
    assert card["sub_title_text"] == "社区：幸福社区    时间：明天"
    closed = cards.template_card(Message("标题\n✅ 已由 李明 接单"), task_id, "已结束", note="这单已经有人接了",
                                 closed_key="v1:claim:7")
    assert closed["button_list"] == [{"text": "已结束", "style": 2, "key": "v1:claim:7"}]
    assert closed["sub_title_text"] == "✅ 已由 李明 接单\n\n这单已经有人接了"
    notice = cards.notice(Message("【A · B】 编号 1\n社区：X\n✅ 已由 李明 接单"))
    assert notice == "【A · B】 编号 1\n✅ 已由 李明 接单"


async def test_one_lease_holder_and_takeover(backend: Backend) -> None:
    db = Database(backend.database_url)
    await db.upgrade()
    now = [datetime(2026, 11, 29, 12, 0)]
    a = Lease(db, "robot", ttl=10, holder="a", now=lambda: now[0])
    b = Lease(db, "robot", ttl=10, holder="b", now=lambda: now[0])
    try:
        assert await a.renew() and not await b.renew()
        now[0] += timedelta(seconds=5)
        assert await a.renew()  # renewed until 12:00:15
        now[0] += timedelta(seconds=9)
        assert not await b.renew() and await b.holder_now() == "a"
        now[0] += timedelta(seconds=2)  # a died: its lease ran out
        assert await b.renew() and not await a.renew()
        await b.release()  # a clean stop hands over at once
        assert await a.renew() and await a.holder_now() == "a"
    finally:
        await db.dispose()


def test_long_markdown_is_split_on_character_boundaries() -> None:
    lines = "\n".join(["行" * 300] * 20)  # 18 kB of three-byte characters
    pieces = cards.split_text(lines)
    assert len(pieces) > 1 and all(len(p.encode()) <= cards.MARKDOWN_BYTES for p in pieces)
    assert "\n".join(pieces) == lines
    one_line = "一" * 2000
    assert "".join(cards.split_text(one_line)) == one_line
    assert cards.split_text("短") == ["短"]


def test_sdk_warnings_never_log_a_frame(caplog: pytest.LogCaptureFixture) -> None:
    from bot.channels.wecom_bot.link import _SdkLog

    caplog.set_level(logging.DEBUG)
    frame = '{"cmd": "aibot_msg_callback", "body": {"text": {"content": "电话13812345678"}}}'
    for head in ("Received unknown frame: ", "Received invalid message format: "):
        _SdkLog().warn(head + frame)
    assert "13812345678" not in caplog.text
