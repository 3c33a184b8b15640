"""Two workers on one database behind one WeCom: callbacks and WeCom's retries land on either worker."""
from __future__ import annotations

import asyncio

from bot.app import App
from bot.clock import Clock
from tests.conftest import Backend
from tests.fakes.wecom import FakeWecom
from tests.fakes.wecom_bot import wecom_mutator
from tests.simclient import MONDAY_10AM_UTC, demo_config


async def _settle(apps: list[App]) -> None:
    for _ in range(3):
        for app in apps:
            for name in ("wecom", "wecom_kf"):
                await app.channels[name].idle()  # type: ignore[attr-defined]
        await asyncio.gather(*(app.settle() for app in apps))


async def test_two_workers_one_token_one_effect(backend: Backend) -> None:
    clock = Clock(frozen_at=MONDAY_10AM_UTC)
    fake = await FakeWecom(clock).start()
    cfg = demo_config(backend.database_url, backend.redis_url, wecom_mutator(fake))
    apps = [App(cfg, clock=clock, redis_prefix=backend.redis_prefix) for _ in range(2)]
    try:
        for app in apps:
            await app.start()
        urls = [f"http://127.0.0.1:{app.port}" for app in apps]
        residents = [f"wmWORKER{i:04d}" for i in range(4)]
        for i, user in enumerate(residents):
            fake.bot_url = urls[i % 2]
            await fake.resident_says(user, "你好")
            kind, body, params = fake.last_push
            fake.bot_url = urls[(i + 1) % 2]  # WeCom's retries reach the other worker
            assert await asyncio.gather(*(fake.post_raw(kind, body, params) for _ in range(2))) == [200, 200]
        # the same encrypted callback retried at the other worker
        fake.bot_url = urls[1]
        body, params = fake.seal("app", {"ToUserName": fake.corp_id, "FromUserName": "v-liming",
                                         "CreateTime": 1, "MsgType": "text", "Content": "值班", "MsgId": "42",
                                         "AgentID": fake.agent_id})
        statuses = await asyncio.gather(*(fake.post_raw("app", body, params) for _ in range(3)))
        fake.bot_url = urls[0]
        statuses += [await fake.post_raw("app", body, params)]
        assert statuses == [200] * 4
        await _settle(apps)
        for user in residents:
            assert len(fake.kf_texts(user)) == 1, fake.kf_texts(user)  # the privacy notice, once
        assert len(fake.texts("v-liming")) == 1
        assert fake.token_calls == 1  # one access_token for both workers
        assert fake.violations == [] and fake.dropped == []
    finally:
        for app in apps:
            await app.stop()
        await fake.close()
