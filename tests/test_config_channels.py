"""The channels section: secrets from the environment, never shown; incomplete settings named by key."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from bot.config import ConfigError, parse_config
from tests.test_config import SHIPPED


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    """The shipped config as YAML data."""
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def _with(data: dict[str, Any], channels: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    out["channels"] = channels
    return out


def test_channels_are_off_by_default(data: dict[str, Any]) -> None:
    cfg = parse_config(copy.deepcopy(data), env={})
    assert not cfg.channels.telegram.enabled and not cfg.channels.wecom.enabled
    assert cfg.channels.telegram.api_base_url == "https://api.telegram.org"
    assert cfg.channels.wecom.api_base_url == "https://qyapi.weixin.qq.com"


def test_telegram_token_from_env_is_never_shown(data: dict[str, Any]) -> None:
    cfg = parse_config(_with(data, {"telegram": {"enabled": True}}), env={"WUWEI_TELEGRAM_TOKEN": "123:SECRET"})
    tg = cfg.channels.telegram
    assert tg.token is not None and tg.token.get_secret_value() == "123:SECRET"
    assert "SECRET" not in repr(cfg) and "SECRET" not in str(tg)
    assert tg.transport == "polling"


def test_telegram_needs_a_token_and_webhook_needs_url_and_secret(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"channels\.telegram: token is required"):
        parse_config(_with(data, {"telegram": {"enabled": True}}), env={})
    with pytest.raises(ConfigError, match="webhook mode needs webhook_url and webhook_secret"):
        parse_config(_with(data, {"telegram": {"enabled": True, "token": "1:x", "mode": "webhook"}}), env={})
    cfg = parse_config(_with(data, {"telegram": {"enabled": True, "token": "1:x", "webhook_secret": "s",
                                                 "webhook_url": "https://bot.example.org/telegram/webhook"}}),
                       env={})
    assert cfg.channels.telegram.transport == "webhook"


def test_wecom_names_every_missing_value(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_with(data, {"wecom": {"enabled": True, "corp_id": "ww1", "app": {"agent_id": 1000002}}}),
                     env={"WUWEI_WECOM_APP_SECRET": "s3cret"})
    text = str(info.value)
    assert text.startswith("channels.wecom:") and "app.token" in text and "kf.open_kfid" in text
    assert "app.secret" not in text and "s3cret" not in text  # the secret came from the environment


def test_wecom_complete_from_env(data: dict[str, Any]) -> None:
    env = {"WUWEI_WECOM_CORP_ID": "ww1", "WUWEI_WECOM_APP_SECRET": "a", "WUWEI_WECOM_APP_TOKEN": "b",
           "WUWEI_WECOM_APP_AES_KEY": "c", "WUWEI_WECOM_KF_TOKEN": "d", "WUWEI_WECOM_KF_AES_KEY": "e"}
    cfg = parse_config(_with(data, {"wecom": {"enabled": True, "app": {"agent_id": 1}, "kf": {"open_kfid": "wk"}}}),
                       env=env)
    assert cfg.channels.wecom.corp_id == "ww1" and cfg.channels.wecom.kf.secret is None


def test_aibot_needs_its_credentials_and_real_teams(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"required when enabled: aibot\.secret"):
        parse_config(_with(data, {"wecom": {"aibot": {"enabled": True, "bot_id": "b"}}}), env={})
    cfg = parse_config(_with(data, {"wecom": {"aibot": {"enabled": True, "bot_id": "b"}}}),
                       env={"WUWEI_WECOM_AIBOT_SECRET": "s"})
    assert cfg.channels.wecom.aibot.enabled and not cfg.channels.wecom.enabled
    with pytest.raises(ConfigError, match="fallback_teams: unknown team 'nope'"):
        parse_config(_with(data, {"wecom": {"aibot": {"fallback_teams": ["nope"]}}}), env={})


def test_one_wecom_userid_per_person(data: dict[str, Any]) -> None:
    bad = copy.deepcopy(data)
    bad["people"]["volunteers"][0]["wecom_userid"] = "LiMing"
    bad["people"]["volunteers"][1]["wecom_userid"] = "LiMing"
    with pytest.raises(ConfigError, match="wecom_userid: 'LiMing' is already"):
        parse_config(bad, env={})


def test_webhook_secret_uses_only_the_characters_telegram_accepts(data: dict[str, Any]) -> None:
    channels = {"telegram": {"enabled": True, "token": "1:x", "webhook_url": "https://bot.example.org/telegram/webhook"}}
    with pytest.raises(ConfigError, match=r"webhook_secret: must be 1-256 characters") as info:
        parse_config(_with(data, channels), env={"WUWEI_TELEGRAM_WEBHOOK_SECRET": "has spaces!"})
    assert "has spaces" not in str(info.value)  # the secret itself is never echoed
