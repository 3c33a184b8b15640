"""The channel registry: which adapters run, built from config, and what the core may know of each (its
traits). Adding a channel means adding it here and in its own folder under bot/channels/; the core
(handlers/, storage/, flows/) never names a platform."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.channels.base import Channel
from bot.clock import Clock
from bot.config import Config
from bot.inbox import Inbox
from bot.ratelimit import RateLimiter
from handlers.events import ChannelTraits
from storage.db import Database
from storage.models import SimMessage, WecomKfSent
from storage.retention import Transcript


def build(cfg: Config, db: Database, clock: Clock, limiter: RateLimiter, kick: Callable[[], None],
          settle: Callable[[list[int] | None], Awaitable[None]],
          advance: Callable[[timedelta], Awaitable[None]], inbox: Inbox) -> dict[str, Channel]:
    """The enabled channels by name (each adapter is imported only when it is enabled)."""
    channels: dict[str, Channel] = {}
    if cfg.simulator.enabled:
        from bot.channels.simulator import SimulatorChannel

        channels["simulator"] = SimulatorChannel(db, clock, settle, advance, cfg.timezone, [t.id for t in cfg.teams],
                                                 cfg.simulator.token)
    if cfg.channels.wecom.enabled:  # the corp app ("wecom") and 微信客服 ("wecom_kf")
        from bot.channels.wecom import build_channels

        for wecom in build_channels(cfg, db, clock, limiter, kick, inbox):
            channels[wecom.name] = wecom
    if cfg.channels.wecom.aibot.enabled:  # the smart robot in volunteer groups ("wecom_bot")
        from bot.channels.wecom_bot import WecomBotChannel

        channels["wecom_bot"] = WecomBotChannel(cfg, db, clock, limiter, settle)
    if cfg.channels.telegram.enabled:
        from bot.channels.telegram import TelegramChannel

        channels["telegram"] = TelegramChannel(cfg.channels.telegram, db, clock, limiter, cfg.locale, inbox,
                                             kick)
    return channels


def traits(cfg: Config) -> dict[str, ChannelTraits]:
    """What the core may know of each channel (by name, running or not: stored rows and bindings may name one
    that is switched off; a channel without special traits is not listed)."""
    aibot = cfg.channels.wecom.aibot
    return {
        # the simulator's "platform" is its chat log in our database: purged and erased like the rest
        "simulator": ChannelTraits(transcript=Transcript(SimMessage, SimMessage.chat_id, SimMessage.created_at)),
        # the corp app: one card to "a|b|c" reaches every member, and one click's update changes every copy
        # (a file goes up with media/upload and out as a file message)
        "wecom": ChannelTraits(fanout=True),
        # 微信客服: files as on the app (a document is two messages of kf's budget); copies of what was sent are
        # kept to explain a failed send
        "wecom_kf": ChannelTraits(transcript=Transcript(WecomKfSent, WecomKfSent.external_userid,
                                                        WecomKfSent.sent_at)),
        # the smart robot's card in a team's group stands for the app's private cards (except fallback teams)
        # while the robot runs; when its card cannot be posted, the members get those private cards after all;
        # a group never gets a file (a resident's export is private data)
        "wecom_bot": ChannelTraits(replaces_private="wecom" if aibot.enabled else None,
                                   keep_private_for=frozenset(aibot.fallback_teams),
                                   card_failed_key="wecom_bot.card_failed", no_files=True),
    }
