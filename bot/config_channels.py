"""The `channels:` part of config.yaml: Telegram and WeCom settings, secrets also from WUWEI_* env."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TelegramConfig(Strict):
    """The Telegram channel (python-telegram-bot as a transport)."""

    enabled: bool = False
    token: SecretStr | None = None  # env WUWEI_TELEGRAM_TOKEN
    api_base_url: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] | None = None  # default: webhook when webhook_url is set
    webhook_url: str | None = None  # the public https URL Telegram posts to (ends with webhook_path)
    webhook_secret: SecretStr | None = None  # env WUWEI_TELEGRAM_WEBHOOK_SECRET
    webhook_path: str = Field(default="/telegram/webhook", pattern=r"^/[A-Za-z0-9/_-]*$")
    poll_timeout: int = Field(default=25, ge=0, le=50)
    rate_limits: bool = True  # false: no flood limits of our own (a local Bot API server, benchmarks)

    @property
    def transport(self) -> str:
        """'polling' or 'webhook'."""
        return self.mode or ("webhook" if self.webhook_url else "polling")

    @field_validator("webhook_secret")
    @classmethod
    def _secret_chars(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", v.get_secret_value()):
            raise ValueError("must be 1-256 characters A-Z, a-z, 0-9, _ or - (Telegram refuses others)")
        return v

    @model_validator(mode="after")
    def _complete(self) -> TelegramConfig:
        if self.enabled and self.token is None:
            raise ValueError("token is required when enabled (or set WUWEI_TELEGRAM_TOKEN)")
        if self.enabled and self.transport == "webhook" and not (self.webhook_url and self.webhook_secret):
            raise ValueError("webhook mode needs webhook_url and webhook_secret")
        return self


class WecomAppConfig(Strict):
    """The corp's self-built app (自建应用): volunteers and coordinators."""

    agent_id: int | None = None
    secret: SecretStr | None = None  # env WUWEI_WECOM_APP_SECRET
    token: SecretStr | None = None  # env WUWEI_WECOM_APP_TOKEN
    encoding_aes_key: SecretStr | None = None  # env WUWEI_WECOM_APP_AES_KEY


class WecomKfConfig(Strict):
    """微信客服 (kf): residents who are ordinary WeChat users."""

    enabled: bool = True
    open_kfid: str | None = None
    secret: SecretStr | None = None  # None: use the app's secret; env WUWEI_WECOM_KF_SECRET
    token: SecretStr | None = None  # env WUWEI_WECOM_KF_TOKEN
    encoding_aes_key: SecretStr | None = None  # env WUWEI_WECOM_KF_AES_KEY


class AibotConfig(Strict):
    """The smart robot (智能机器人) in volunteer group chats, over its WebSocket long connection."""

    enabled: bool = False
    bot_id: str | None = None
    secret: SecretStr | None = None  # env WUWEI_WECOM_AIBOT_SECRET
    ws_url: str = "wss://openws.work.weixin.qq.com"
    fallback_teams: list[str] = []  # teams whose groups have no working robot: 1:1 app cards instead


class WecomConfig(Strict):
    """The WeCom (企业微信) channels."""

    enabled: bool = False
    corp_id: str | None = None  # env WUWEI_WECOM_CORP_ID
    api_base_url: str = "https://qyapi.weixin.qq.com"
    callback_path: str = Field(default="/wecom/callback", pattern=r"^/[A-Za-z0-9/_-]*$")
    app: WecomAppConfig = WecomAppConfig()
    kf: WecomKfConfig = WecomKfConfig()
    aibot: AibotConfig = AibotConfig()

    @model_validator(mode="after")
    def _complete(self) -> WecomConfig:
        missing: list[str] = []
        if self.enabled:
            missing += [k for k, v in (("corp_id", self.corp_id), ("app.agent_id", self.app.agent_id),
                                       ("app.secret", self.app.secret), ("app.token", self.app.token),
                                       ("app.encoding_aes_key", self.app.encoding_aes_key)) if v is None]
        if self.enabled and self.kf.enabled:
            missing += [k for k, v in (("kf.open_kfid", self.kf.open_kfid), ("kf.token", self.kf.token),
                                       ("kf.encoding_aes_key", self.kf.encoding_aes_key)) if v is None]
        if self.aibot.enabled:
            missing += [k for k, v in (("aibot.bot_id", self.aibot.bot_id), ("aibot.secret", self.aibot.secret))
                        if v is None]
        if missing:
            raise ValueError(f"required when enabled: {', '.join(missing)} (secrets may come from WUWEI_WECOM_* env)")
        return self


class ChannelsConfig(Strict):
    """Real messaging platforms (the simulator has its own section)."""

    telegram: TelegramConfig = TelegramConfig()
    wecom: WecomConfig = WecomConfig()


# env variable -> (path of keys) for secrets kept out of config.yaml
ENV_SECRETS = {
    "WUWEI_TELEGRAM_TOKEN": ("channels", "telegram", "token"),
    "WUWEI_TELEGRAM_WEBHOOK_SECRET": ("channels", "telegram", "webhook_secret"),
    "WUWEI_WECOM_CORP_ID": ("channels", "wecom", "corp_id"),
    "WUWEI_WECOM_APP_SECRET": ("channels", "wecom", "app", "secret"),
    "WUWEI_WECOM_APP_TOKEN": ("channels", "wecom", "app", "token"),
    "WUWEI_WECOM_APP_AES_KEY": ("channels", "wecom", "app", "encoding_aes_key"),
    "WUWEI_WECOM_KF_SECRET": ("channels", "wecom", "kf", "secret"),
    "WUWEI_WECOM_KF_TOKEN": ("channels", "wecom", "kf", "token"),
    "WUWEI_WECOM_KF_AES_KEY": ("channels", "wecom", "kf", "encoding_aes_key"),
    "WUWEI_WECOM_AIBOT_SECRET": ("channels", "wecom", "aibot", "secret"),
    "WUWEI_SIMULATOR_TOKEN": ("simulator", "token"),
}


def apply_env(data: dict[str, Any], env: dict[str, str]) -> None:
    """Put secrets given as WUWEI_* environment variables into the config data (env wins)."""
    for var, path in ENV_SECRETS.items():
        if not env.get(var):
            continue
        node = data
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = env[var]
