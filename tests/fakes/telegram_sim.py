"""Drive a real bot through Telegram: the fake Bot API plays the people, the bot runs its real adapter.

`TgSim` speaks the same helper language as tests/simclient.Sim (say, press, last, messages …), so the
simulator's end-to-end scenarios run unchanged on Telegram. People and groups are named as in the demo
config ("v-liming", "grp-xingfu-elderly"); each name gets a stable Telegram id.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.clock import Clock
from bot.config import Config
from storage import channel_repo
from storage.models import OutboxMessage
from tests.fakes.telegram import FakeTelegram, fixture
from tests.simclient import MONDAY_10AM_UTC, Sim, demo_config

TOKEN = "7712345678:AAF4k3-t0ken_for_tests_only_0123456789"
SECRET = "webhook-secret_for-tests"
PUBLIC_URL = "https://bot.example.org/telegram/webhook"
STEP = timedelta(seconds=3)  # people take a moment between taps: time moves on before each action
CODE_RE = re.compile(r"/link ([23456789A-HJ-NP-Z]{8})")


def tg_config(database_url: str, redis_url: str | None, api: str, mode: str, mutate: Any = None) -> Config:
    """The demo config with Telegram on (pointed at the fake) and the simulator off."""
    def change(data: dict[str, Any]) -> None:
        data["simulator"] = {"enabled": False}
        for team in data["teams"]:
            team["groups"] = {}  # Telegram groups are bound with /bind
        data["channels"] = {"telegram": {"enabled": True, "token": TOKEN, "api_base_url": api, "mode": mode,
                                         "webhook_url": PUBLIC_URL, "webhook_secret": SECRET, "poll_timeout": 5}}
        if mutate:
            mutate(data)
    return demo_config(database_url, redis_url, change)


@dataclass
class TgSim(Sim):
    """A running bot on Telegram (fake) and the people using it."""

    fake: FakeTelegram | None = None
    mode: str = "polling"
    auto_wait: bool = True  # let rate-limit pauses pass as real time would
    ids: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def create(cls, backend: Any, mode: str, mutate: Any = None) -> TgSim:
        """Fake server, config and a started bot on this backend."""
        clock = Clock(frozen_at=MONDAY_10AM_UTC)
        fake = await FakeTelegram(TOKEN, clock).start()
        cfg = tg_config(backend.database_url, backend.redis_url, fake.base_url, mode, mutate)
        sim = cls(cfg, clock, redis_prefix=backend.redis_prefix, fake=fake, mode=mode)
        return await sim.start()  # type: ignore[return-value]

    async def start(self) -> TgSim:
        """Start the bot; in webhook mode the fake posts to it (as a reverse proxy would)."""
        await super().start()
        assert self.fake is not None
        self.fake.webhook_base = self.base
        return self

    async def close(self) -> None:
        """Stop the bot and the fake (checking first that no group ever showed personal data)."""
        await super().close()
        if self.fake is not None:
            await self.fake.close()

    # ---- ids ---------------------------------------------------------------------------------------
    def uid(self, name: str) -> int:
        """The Telegram id of a person or group name (groups are negative, like supergroups)."""
        if name not in self.ids:
            n = len(self.ids) + 1
            self.ids[name] = -1001000000000 - n if name.startswith("grp-") else 5000000000 + n
        return self.ids[name]

    def name_of(self, tid: int) -> str:
        """The name behind an id."""
        return next((n for n, i in self.ids.items() if i == tid), str(tid))

    def user_json(self, name: str) -> dict[str, Any]:
        """A Telegram User object."""
        return {"id": self.uid(name), "is_bot": False, "first_name": name, "language_code": "zh-hans"}

    def chat_json(self, chat: str) -> dict[str, Any]:
        """A Telegram Chat object."""
        if chat.startswith("grp-"):
            return {"id": self.uid(chat), "title": chat, "type": "supergroup"}
        return {"id": self.uid(chat), "first_name": chat, "type": "private"}

    # ---- updates -----------------------------------------------------------------------------------
    def message_update(self, chat: str, user: str, fixture_name: str = "private_message",
                       **fields: Any) -> dict[str, Any]:
        """A message update from a recorded payload, from `user` in `chat`, with these fields."""
        assert self.fake is not None
        payload = fixture(fixture_name)
        msg = payload["message"]
        msg["from"], msg["chat"] = self.user_json(user), self.chat_json(chat)
        for key in ("text", "entities", "contact", "location", "reply_to_message"):
            msg.pop(key, None)
        msg.update(fields)
        return self.fake.user_message(payload)

    def text_update(self, chat: str, user: str, text: str) -> dict[str, Any]:
        """Typed text (a command gets its bot_command entity, as clients send it)."""
        extra: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            extra["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
        return self.message_update(chat, user, "group_command" if chat.startswith("grp-") else "private_message",
                                   **extra)

    def press_update(self, chat: str, user: str, message_id: str, data: str) -> tuple[dict[str, Any], str]:
        """A button press on a bot message (recorded payload, patched)."""
        assert self.fake is not None
        payload = fixture("callback_query")
        query = payload["callback_query"]
        shown = next((m for m in self.fake.chats.get(self.uid(chat), []) if str(m.message_id) == message_id), None)
        query["from"], query["data"] = self.user_json(user), data
        query["message"].update({"message_id": int(message_id), "chat": self.chat_json(chat),
                                 "from": self.fake.bot_user(), "date": self.fake.epoch(),
                                 "text": shown.text if shown else "…"})
        query["message"]["reply_markup"] = (shown.reply_markup if shown else None) or {"inline_keyboard": []}
        return self.fake.callback(payload)

    def added_update(self, group: str, by: str) -> dict[str, Any]:
        """The bot was added to a group by `by`."""
        assert self.fake is not None
        payload = fixture("my_chat_member_added")
        change = payload["my_chat_member"]
        change["chat"], change["from"], change["date"] = self.chat_json(group), self.user_json(by), self.fake.epoch()
        change["old_chat_member"]["user"] = change["new_chat_member"]["user"] = self.fake.bot_user()
        self.fake.open_chat(change["chat"])
        return self.fake.new_update(payload)

    async def feed(self, update: dict[str, Any], wait: bool = True) -> int:
        """Give the bot an update by the configured transport; returns the HTTP status (200 when polled)."""
        assert self.fake is not None and self.app is not None
        self.app.clock.advance(STEP)
        if self.mode == "webhook":
            status = await self.fake.deliver(update)
        else:
            self.fake.enqueue(update)
            await self.fake.wait_confirmed(update["update_id"])
            status = 200
        if wait:
            await self.settle_all()
        return status

    async def settle_all(self) -> None:
        """Deliver what is due; with auto_wait, let short rate-limit pauses pass (moving the clock)."""
        assert self.app is not None
        for _ in range(500):
            await self.app.settle()
            wait = await self.next_due()
            if wait is None or not self.auto_wait or wait > 120:
                return
            self.app.clock.advance(timedelta(seconds=max(wait, 0.0)))

    async def next_due(self) -> float | None:
        """Seconds until the next waiting outbox row can go (the first of each chat's queue; None: none)."""
        assert self.app is not None
        async with self.app.db.transaction() as s:
            rows = (await s.execute(select(OutboxMessage.channel, OutboxMessage.chat_id, OutboxMessage.next_attempt_at)
                                    .where(OutboxMessage.status == "pending").order_by(OutboxMessage.id))).all()
        heads: dict[tuple[str, str], Any] = {}
        for channel, chat, at in rows:
            heads.setdefault((channel, chat), at)
        if not heads:
            return None
        return (min(heads.values()) - self.app.clock.now()).total_seconds()

    # ---- the Sim helper language -------------------------------------------------------------------
    async def send(self, chat_id: str, user_id: str, text: str, name: str = "", **extra: Any) -> Any:
        """A person types text in a chat."""
        await self.feed(self.text_update(chat_id, user_id, text))
        return {"ok": True}

    async def press_data(self, chat_id: str, user_id: str, message_id: str, data: str, **extra: Any) -> str | None:
        """Press a button; returns the toast the bot answered the callback query with."""
        assert self.fake is not None
        update, qid = self.press_update(chat_id, user_id, message_id, data)
        await self.feed(update)
        assert qid in self.fake.answers, "the callback query was never answered"
        return self.fake.answers[qid] or None

    async def messages(self, chat_id: str) -> list[dict[str, Any]]:
        """Everything a chat shows, in the simulator's shape."""
        assert self.fake is not None
        out = []
        for m in self.fake.chats.get(self.uid(chat_id), []):
            rows = (m.reply_markup or {}).get("inline_keyboard", [])
            buttons = [[{"text": b["text"], "data": b.get("callback_data", "")} for b in row] for row in rows]
            out.append({"message_id": str(m.message_id), "text": m.text, "buttons": buttons, "edited": m.edits > 0,
                        "sender": "bot" if m.sender == "bot" else self.name_of(int(m.sender)),
                        "document": {"filename": m.document[0], "content": m.document[1].decode()}
                        if m.document else None})
        return out

    async def advance(self, minutes: float) -> None:
        """Move the bot's clock forward, fire due timers and deliver."""
        assert self.app is not None
        await self.app.advance(timedelta(minutes=minutes))
        await self.settle_all()

    async def assert_groups_private(self) -> None:
        """No group ever showed (in any version of any message) a resident's phone or address."""
        assert self.fake is not None
        for chat_id, msgs in self.fake.chats.items():
            if chat_id > 0:
                continue
            for text in (v for m in msgs if m.sender == "bot" for v in m.versions):
                assert not re.search(r"1[3-9]\d{9}", text), (chat_id, text)
                for secret in self.secrets:
                    assert secret not in text, (chat_id, text)

    # ---- accounts and groups -----------------------------------------------------------------------
    async def bootstrap(self, person_id: str) -> None:
        """The first coordinator links their account with a code the operator issued (no one can yet)."""
        assert self.app is not None
        async with self.app.db.transaction() as s:
            code = await channel_repo.issue_link_code(s, person_id, "operator", self.app.clock.now(),
                                                      timedelta(days=7))
        await self.say(person_id, f"/link {code}")
        assert "关联成功" in await self.last(person_id)

    async def link(self, person_id: str, by: str = "c-zhao") -> None:
        """A coordinator issues a code with /linkcode; the person sends /link <code> privately."""
        await self.say(by, f"/linkcode {person_id}")
        found = CODE_RE.search(await self.last(by))
        assert found, await self.last(by)
        await self.say(person_id, f"/link {found.group(1)}")
        assert "关联成功" in await self.last(person_id), await self.last(person_id)

    async def bind(self, group: str, team_id: str, by: str = "c-zhao") -> None:
        """Add the bot to a group, then a coordinator binds it with /bind@<bot> <team>."""
        assert self.fake is not None
        await self.feed(self.added_update(group, by))
        await self.send(group, by, f"/bind@{self.fake.username} {team_id}")
        assert "绑定" in await self.last(group), await self.last(group)


Factory = Callable[..., Awaitable[TgSim]]


@asynccontextmanager
async def bots(backend: Any) -> AsyncIterator[Factory]:
    """Start bots on a backend (`await start(mode, mutate)`), each with c-zhao linked; all closed after."""
    sims: list[TgSim] = []

    async def start(mode: str = "polling", mutate: Any = None) -> TgSim:
        sim = await TgSim.create(backend, mode, mutate)
        sims.append(sim)
        await sim.bootstrap("c-zhao")
        return sim

    try:
        yield start
    finally:
        for sim in sims:
            await sim.close()
