"""The WeCom (企业微信) channels: "wecom" (the corp's self-built app, for volunteers and coordinators)
and "wecom_kf" (微信客服, for residents). See README "WeCom" and ../shared/PROTOCOLS.md."""
from __future__ import annotations

from collections.abc import Callable

from bot.channels.base import Channel
from bot.channels.wecom.api import WecomApi
from bot.channels.wecom.corpapp import AppChannel
from bot.channels.wecom.kf import KfChannel
from bot.clock import Clock
from bot.config import Config
from bot.inbox import Inbox
from bot.ratelimit import RateLimiter
from storage.db import Database

__all__ = ["AppChannel", "KfChannel", "build_channels"]


def build_channels(cfg: Config, db: Database, clock: Clock, limiter: RateLimiter,
                   kick: Callable[[], None], inbox: Inbox) -> list[Channel]:
    """The enabled WeCom channels (the app always; kf when channels.wecom.kf.enabled)."""
    wc = cfg.channels.wecom
    assert wc.corp_id and wc.app.secret, "config validation requires them when WeCom is enabled"
    app_secret = wc.app.secret.get_secret_value()
    app_api = WecomApi(wc.api_base_url, wc.corp_id, app_secret, "app", db, clock)
    kf: KfChannel | None = None
    if wc.kf.enabled:
        kf_secret = wc.kf.secret.get_secret_value() if wc.kf.secret else app_secret
        kf_api = app_api if kf_secret == app_secret else WecomApi(wc.api_base_url, wc.corp_id, kf_secret, "kf",
                                                                  db, clock)
        kf = KfChannel(cfg, db, clock, kf_api, kick, inbox)
    channels: list[Channel] = [AppChannel(cfg, db, clock, app_api, limiter, kick, kf, inbox)]
    if kf is not None:
        channels.append(kf)
    return channels
