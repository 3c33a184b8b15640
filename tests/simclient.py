"""Drive a real bot through the simulator's HTTP API, as the web page (or a person) would."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import yaml
from sqlalchemy import func, select

from bot.app import App
from bot.clock import Clock
from bot.config import Config, parse_config
from storage.db import Database

# Monday 2026-11-23 10:00 in Asia/Shanghai: station rosters are on duty.
MONDAY_10AM_UTC = datetime(2026, 11, 23, 2, 0)
CROWD = [f"v-crowd{i:02d}" for i in range(50)]


def add_crowd(data: dict[str, Any]) -> None:
    """Config change: 50 more trained volunteers in 幸福社区's elderly team (for claim races)."""
    data["people"]["volunteers"] += [{"id": v, "name": f"志愿者{v[-2:]}", "trained": True} for v in CROWD]
    team = next(t for t in data["teams"] if t["id"] == "t-xingfu-elderly")
    team["members"] += CROWD


async def count_rows(url: str, model: Any) -> int:
    """How many rows a table has (read through a fresh connection, as an operator would)."""
    db = Database(url)
    try:
        async with db.transaction() as s:
            return int((await s.execute(select(func.count()).select_from(model))).scalar_one())
    finally:
        await db.dispose()


async def delete_redis_keys(url: str, prefix: str) -> None:
    """Delete one run's Redis keys (never FLUSHDB: other runs may share the server)."""
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def demo_config(database_url: str, redis_url: str | None,
                mutate: Callable[[dict[str, Any]], None] | None = None) -> Config:
    """The shipped demo config pointed at a test database on a free port, optionally changed."""
    data = yaml.safe_load(Path("config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database_url": database_url, "redis_url": redis_url}
    data["http"] = {"host": "127.0.0.1", "port": 0}
    data["timings"]["tick_seconds"] = 300  # timers fire when the test moves the clock
    if mutate:
        mutate(data)
    return parse_config(data)


@dataclass
class Sim:
    """A running bot and an HTTP client for its simulator API."""

    cfg: Config
    clock: Clock
    redis_prefix: str = "wuwei:"
    app: App | None = None
    http: aiohttp.ClientSession | None = None
    base: str = ""
    secrets: set[str] = field(default_factory=set)  # phones and addresses residents typed

    async def assert_groups_private(self) -> None:
        """No group chat shows a resident's phone or address (checked after every e2e test)."""
        assert self.http is not None
        async with self.http.get(self.base + "/sim/api/directory") as r:
            groups = [g["chat_id"] for g in (await r.json())["groups"]]
        for chat in groups:
            for text in await self.bot_texts(chat):
                assert not re.search(r"1[3-9]\d{9}", text), (chat, text)
                for secret in self.secrets:
                    assert secret not in text, (chat, text)

    async def start(self) -> Sim:
        """Start (or restart) the bot on the same database and clock."""
        self.app = App(self.cfg, clock=self.clock, redis_prefix=self.redis_prefix)
        await self.app.start()
        self.base = f"http://127.0.0.1:{self.app.port}"
        if self.http is None:
            self.http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        """Stop the bot (the database stays)."""
        if self.app is not None:
            await self.app.stop()
            self.app = None

    async def restart(self) -> None:
        """Stop and start again, as after a crash or a deploy."""
        await self.stop()
        await self.start()

    async def close(self) -> None:
        """Stop everything."""
        if self.app is not None:
            await self.assert_groups_private()
        await self.stop()
        if self.http is not None:
            await self.http.close()

    async def post(self, path: str, body: Any, expect: int = 200) -> Any:
        """POST JSON and return the decoded answer (asserting the status)."""
        assert self.http is not None
        async with self.http.post(self.base + path, json=body) as r:
            data = await r.json(content_type=None)
            assert r.status == expect, (r.status, data)
            return data

    async def send(self, chat_id: str, user_id: str, text: str, name: str = "", **extra: Any) -> Any:
        """A person types text in a chat."""
        return await self.post("/sim/api/send", {"chat_id": chat_id, "user_id": user_id, "user_name": name,
                                                 "text": text, **extra})

    async def say(self, user_id: str, text: str, name: str = "") -> Any:
        """A person types in their private chat with the bot."""
        return await self.send(user_id, user_id, text, name)

    async def messages(self, chat_id: str) -> list[dict[str, Any]]:
        """Everything a chat shows."""
        assert self.http is not None
        async with self.http.get(f"{self.base}/sim/api/chats/{chat_id}/messages") as r:
            assert r.status == 200
            return list(await r.json())

    async def bot_texts(self, chat_id: str) -> list[str]:
        """The bot's messages in a chat, as text."""
        return [m["text"] for m in await self.messages(chat_id) if m["sender"] == "bot"]

    async def last(self, chat_id: str) -> str:
        """The bot's latest message in a chat."""
        texts = await self.bot_texts(chat_id)
        return texts[-1] if texts else ""

    async def find_button(self, chat_id: str, label: str, contains: str | None = None) -> tuple[str, str]:
        """(message_id, data) of the newest button with this label (in a message containing `contains`)."""
        for m in reversed(await self.messages(chat_id)):
            if contains and contains not in m["text"]:
                continue
            for row in m["buttons"]:
                for b in row:
                    if b["text"] == label:
                        return m["message_id"], b["data"]
        raise AssertionError(f"no button {label!r} in {chat_id}: {await self.bot_texts(chat_id)}")

    async def press(self, chat_id: str, user_id: str, label: str, contains: str | None = None,
                    **extra: Any) -> str | None:
        """A person presses the newest button with this label; returns the toast."""
        message_id, data = await self.find_button(chat_id, label, contains)
        return await self.press_data(chat_id, user_id, message_id, data, **extra)

    async def press_data(self, chat_id: str, user_id: str, message_id: str, data: str, **extra: Any) -> str | None:
        """Press a button known by its message and data (it may be stale); returns the toast."""
        res = await self.post("/sim/api/press", {"chat_id": chat_id, "user_id": user_id,
                                                  "message_id": message_id, "data": data, **extra})
        return res["answer"]

    async def accept_privacy(self, resident: str) -> bool:
        """Press 同意并继续 if the bot just showed the privacy notice (a resident's first form); True if it did."""
        msgs = await self.messages(resident)
        last = next((m for m in reversed(msgs) if m["sender"] == "bot"), None)
        if last is None or not any(b["text"] == "同意并继续" for row in last["buttons"] for b in row):
            return False
        await self.press_data(resident, resident, last["message_id"],
                              next(b["data"] for row in last["buttons"] for b in row if b["text"] == "同意并继续"))
        return True

    async def advance(self, minutes: float) -> None:
        """Move the bot's clock forward and let due timers fire."""
        await self.post("/sim/api/clock", {"advance_minutes": minutes})

    async def ask_for_help(self, resident: str, category: str, service: str, community: str,
                           when: str = "明天上午9点", address: str = "幸福路12号3单元401",
                           phone: str = "13812345678", description: str = "老人腿脚不便，需要陪同去医院复查",
                           name: str = "张阿姨") -> str:
        """Walk the whole intake form by buttons and typing; returns the request number."""
        self.secrets.update({phone, address})
        await self.say(resident, "你好", name)
        await self.accept_privacy(resident)
        await self.press(resident, resident, category)
        await self.press(resident, resident, service)
        await self.press(resident, resident, community)
        await self.press(resident, resident, "家里人")
        await self.press(resident, resident, "选日期")
        await self.say(resident, when)
        await self.say(resident, address)
        await self.say(resident, phone)
        await self.say(resident, description)
        await self.press(resident, resident, "确认提交")
        last = await self.last(resident)
        assert "已提交，编号" in last, last
        return last.split("编号 ")[1].split("。")[0]
