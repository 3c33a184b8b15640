"""The simulator is not a back door: a public host needs a token, every page and API call checks it, a real
channel next to the simulator is warned about, and simulator groups of a switched-off simulator stay quiet."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.app import App
from bot.clock import Clock
from bot.config import Config, ConfigError, parse_config
from bot.config_checks import config_warnings
from tests.conftest import Backend
from tests.fakes.telegram_sim import TgSim
from tests.simclient import MONDAY_10AM_UTC
from tests.test_cli import write_config, wuwei

TOKEN = "s3cret-sim-token-for-tests"


def shipped(change: dict[str, Any] | None = None, db: str = "sqlite+aiosqlite:///:memory:") -> dict[str, Any]:
    data = yaml.safe_load(Path("config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database_url": db, "redis_url": None}
    data.update(change or {})
    return data


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "bot.example.org"])
def test_a_public_host_needs_a_token(host: str) -> None:
    with pytest.raises(ConfigError, match=r"simulator\.token: required"):
        parse_config(shipped({"http": {"host": host, "port": 8080}}))
    assert parse_config(shipped({"http": {"host": host, "port": 8080}, "simulator": {"token": TOKEN}}))
    assert parse_config(shipped({"http": {"host": host, "port": 8080}, "simulator": {"enabled": False}}))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_a_loopback_host_needs_none(host: str) -> None:
    assert parse_config(shipped({"http": {"host": host, "port": 8080}})).simulator.token is None


def test_the_token_can_come_from_the_environment() -> None:
    cfg = parse_config(shipped({"http": {"host": "0.0.0.0", "port": 8080}}),
                          env={"WUWEI_SIMULATOR_TOKEN": TOKEN})
    assert cfg.simulator.token == TOKEN


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="simulator.token"):
        parse_config(shipped({"simulator": {"token": "short"}}))


def test_run_refuses_a_public_host_without_a_token(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"http": {"host": "0.0.0.0", "port": 8080}})
    res = wuwei("--config", str(path), "run")
    assert res.returncode == 2
    assert "simulator.token: required" in res.stderr and "Traceback" not in res.stderr


def test_check_config_warns_about_unused_simulator_groups_and_a_simulator_next_to_a_real_channel(
        tmp_path: Path) -> None:
    quiet = wuwei("--config", str(write_config(tmp_path)), "check-config")
    assert quiet.returncode == 0 and "warning" not in quiet.stdout
    off = wuwei("--config", str(write_config(tmp_path, {"simulator": {"enabled": False}})), "check-config")
    assert off.returncode == 0, off.stderr
    assert "warning: teams[].groups.simulator: simulator is off" in off.stdout
    telegram = {"telegram": {"enabled": True, "token": "123456:" + "x" * 30}}
    both = wuwei("--config", str(write_config(tmp_path, {"channels": telegram})), "check-config")
    assert both.returncode == 0, both.stderr
    assert "warning: simulator.enabled: the simulator is on while telegram is enabled" in both.stdout


def test_config_warnings_name_each_unused_channel() -> None:
    data = shipped({"simulator": {"enabled": False}})
    data["teams"][0]["groups"]["telegram"] = "-1001234"
    warnings = config_warnings(parse_config(data))
    assert [w.split(":")[0] for w in warnings] == ["teams[].groups.simulator", "teams[].groups.telegram"]
    assert "1 team(s) (t-xingfu-elderly)" in warnings[1]


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[str]:
    """A bot listening on every address with simulator.token set; yields its base URL on 127.0.0.1."""
    data = shipped({"http": {"host": "0.0.0.0", "port": 0}, "simulator": {"token": TOKEN}},
                   db=f"sqlite+aiosqlite:///{tmp_path}/wuwei.db")
    cfg: Config = parse_config(data)
    app = App(cfg, clock=Clock(frozen_at=MONDAY_10AM_UTC))
    await app.start()
    try:
        yield f"http://127.0.0.1:{app.port}"
    finally:
        await app.stop()


async def test_every_page_and_call_needs_the_token(guarded: str) -> None:
    calls = [("GET", "/"), ("GET", "/sim/static/sim.js"), ("GET", "/sim/api/directory"),
             ("GET", "/sim/api/chats/r-1/messages"), ("GET", "/sim/api/clock"),
             ("POST", "/sim/api/send"), ("POST", "/sim/api/press"), ("POST", "/sim/api/clock")]
    async with aiohttp.ClientSession() as http:
        for method, path in calls:
            for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
                async with http.request(method, guarded + path, headers=headers, json={}) as r:
                    assert r.status == 401, (method, path, headers)
                    assert "token" in (await r.json())["error"]
        async with http.get(guarded + "/sim/api/directory?token=nope") as r:
            assert r.status == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with http.post(guarded + "/sim/api/send", headers=bearer,
                             json={"chat_id": "r-1", "user_id": "r-1", "text": "你好"}) as r:
            assert r.status == 200
        async with http.get(guarded + "/sim/api/chats/r-1/messages", headers=bearer) as r:
            assert r.status == 200 and len(await r.json()) >= 2


async def test_the_page_keeps_the_token_in_a_cookie(guarded: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(guarded + f"/?token={TOKEN}") as r:
            assert r.status == 200 and "<html" in (await r.text()).lower()
        for path in ("/sim/static/sim.js", "/sim/static/sim.css", "/sim/api/directory"):
            async with browser.get(guarded + path) as r:  # what the page loads next, with the cookie only
                assert r.status == 200, path
        async with browser.get(guarded + "/sim/static/..%2F__init__.py") as r:
            assert r.status == 404


async def test_an_open_simulator_on_loopback_needs_nothing(sim: Any) -> None:
    async with sim.http.get(sim.base + "/sim/static/sim.js") as r:
        assert r.status == 200
    async with sim.http.get(sim.base + "/sim/api/directory") as r:
        assert r.status == 200


async def test_simulator_groups_of_a_switched_off_simulator_raise_no_alert(backend: Backend) -> None:
    """Telegram on, the simulator off, teams still listing their simulator groups: a request is posted to the
    Telegram group only, and no coordinator hears that a simulator group could not get its card."""
    original = {t["id"]: t["groups"] for t in shipped()["teams"]}

    def keep_simulator_groups(data: dict[str, Any]) -> None:
        for team in data["teams"]:
            team["groups"] = dict(original[team["id"]])

    tg = await TgSim.create(backend, "polling", keep_simulator_groups)
    try:
        await tg.bootstrap("c-zhao")
        await tg.bind("grp-xingfu-elderly", "t-xingfu-elderly")
        number = await tg.ask_for_help("r-wang", "为老服务", "陪同就医", "幸福社区")
        await tg.settle_all()
        assert any(number in text for text in await tg.bot_texts("grp-xingfu-elderly"))
        coordinator = await tg.bot_texts("c-zhao")
        assert not [text for text in coordinator if "没能发到" in text], coordinator
    finally:
        await tg.close()
