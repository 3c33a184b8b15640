"""A real bot wired to the fake WeCom server, on a test backend with a frozen clock."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.app import App
from bot.clock import Clock
from tests.fakes.wecom import FakeWecom
from tests.simclient import MONDAY_10AM_UTC, demo_config


def wecom_mutator(fake: FakeWecom, extra: Callable[[dict[str, Any]], None] | None = None,
                  ) -> Callable[[dict[str, Any]], None]:
    """Config change: WeCom on (pointed at the fake), the simulator off, every staff member a corp member."""

    def mutate(data: dict[str, Any]) -> None:
        if extra:
            extra(data)
        data["simulator"] = {"enabled": False}
        data["channels"] = {"wecom": {
            "enabled": True, "corp_id": fake.corp_id, "api_base_url": fake.url,
            "app": {"agent_id": fake.agent_id, "secret": fake.app_secret, "token": fake.app_token,
                    "encoding_aes_key": fake.app_aes},
            "kf": {"enabled": True, "open_kfid": fake.open_kfid, "token": fake.kf_token,
                   "encoding_aes_key": fake.kf_aes}}}
        for group in ("volunteers", "coordinators"):
            for person in data["people"][group]:
                person["wecom_userid"] = person["id"]
    return mutate


@dataclass
class WecomBot:
    """The bot, the fake and the clock they share."""

    app: App
    fake: FakeWecom
    clock: Clock

    @classmethod
    async def create(cls, database_url: str, redis_url: str | None, redis_prefix: str = "wuwei:",
                     extra: Callable[[dict[str, Any]], None] | None = None, **fake_args: Any) -> WecomBot:
        """Start the fake, then the bot pointed at it."""
        clock = Clock(frozen_at=MONDAY_10AM_UTC)
        fake = await FakeWecom(clock, **fake_args).start()
        cfg = demo_config(database_url, redis_url, wecom_mutator(fake, extra))
        app = App(cfg, clock=clock, redis_prefix=redis_prefix)
        await app.start()
        fake.bot_url = f"http://127.0.0.1:{app.port}"
        bot = cls(app, fake, clock)
        await bot.settle()
        return bot

    async def settle(self) -> None:
        """Wait for callbacks in progress and deliver everything due."""
        for _ in range(3):
            for name in ("wecom", "wecom_kf"):
                await self.app.channels[name].idle()  # type: ignore[attr-defined]
            tasks = [t for t in asyncio.all_tasks() if t.get_name() == "wecom-kf-links"]
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.app.settle()

    async def advance(self, **delta: float) -> None:
        """Move time on, fire due timers, deliver."""
        await self.app.advance(timedelta(**delta))
        await self.settle()

    async def resident(self, user: str, text: str, **kw: Any) -> None:
        """A resident writes in kf and the bot has answered."""
        await self.fake.resident_says(user, text, **kw)
        await self.settle()

    async def click(self, user: str, label: str) -> None:
        """A resident clicks a menu item."""
        await self.fake.resident_clicks(user, label)
        await self.settle()

    async def member(self, userid: str, text: str) -> str:
        """A member writes to the app; the bot's newest message to them."""
        await self.fake.member_says(userid, text)
        await self.settle()
        return self.fake.texts(userid)[-1]

    async def press(self, userid: str, label: str, contains: str = "") -> str:
        """A member clicks a card button; the answer the bot sent back."""
        before = len(self.fake.app_inbox[userid])
        await self.fake.press(userid, label, contains)
        await self.settle()
        new = [m["text"] for m in self.fake.app_inbox[userid][before:] if m["kind"] == "text"]
        return new[-1] if new else ""

    async def close(self) -> None:
        """Stop the bot and the fake."""
        await self.app.stop()
        await self.fake.close()
