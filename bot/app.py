"""Wiring: database, channels, dispatcher, outbox, scheduler and the aiohttp server, started and stopped
together."""
from __future__ import annotations

import logging
from datetime import timedelta

from aiohttp import web

from bot.channels import registry
from bot.channels.base import Channel
from bot.clock import Clock
from bot.config import Config, redact_url
from bot.dispatcher import Dispatcher
from bot.inbox import Inbox
from bot.outbox import LEASE, Outbox
from bot.ratelimit import make_rate_limiter
from bot.scheduler import Scheduler
from bot.seed import sync_config
from handlers.events import ChannelTraits
from storage.db import Database
from storage.repo import NewRow

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Read the message catalogs now (once per process), not while the first person's message waits. (The crisis
    models, about 10 MB in memory, are read with the first private text: a worker that only serves groups or
    stays idle does not carry them.)"""
    from flows import i18n

    i18n.keywords()


class App:
    """One worker process of the bot."""

    def __init__(self, cfg: Config, clock: Clock | None = None, redis_prefix: str = "wuwei:") -> None:
        self.cfg = cfg
        self.clock = clock or Clock()
        self.db = Database(cfg.storage.database_url)
        self.redis_prefix = redis_prefix
        # one limiter for every channel: shared through Redis when several workers send
        self.limiter = make_rate_limiter(cfg.storage.redis_url, self.clock, prefix=redis_prefix + "rate:",
                                         share=cfg.storage.redis_fallback_workers)
        self.channels: dict[str, Channel] = {}
        self.traits: dict[str, ChannelTraits] = registry.traits(cfg)
        self.outbox = Outbox(cfg, self.db, self.channels, self.clock)
        # updates acknowledged to their platform once durable, handled right after (webhooks, polling)
        self.inbox = Inbox(self.db)
        self.dispatcher = Dispatcher(cfg, self.db, self.clock, on_outbox=self._kick,
                                     lease_seconds=LEASE.total_seconds(), traits=self.traits)
        self.outbox.on_card_failed = self.dispatcher.card_undeliverable
        self.scheduler = Scheduler(self.db, self.dispatcher, self.clock, cfg.timings.tick_seconds,
                                   cfg.privacy.retention,
                                   [t.transcript for t in self.traits.values() if t.transcript is not None])
        self.web = web.Application(client_max_size=1024 * 1024)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _kick(self, ids: list[int], leased: list[NewRow]) -> None:
        self.outbox.deliver_now(leased)
        if len(leased) < len(ids):  # some rows wait behind others of their chat: the loop takes them in order
            self.outbox.kick()

    async def settle(self, ids: list[int] | None = None) -> None:
        """Deliver everything due now, waiting for these outbox rows (the simulator answers after this); without
        ids, first handle every update the inbox holds."""
        if ids is None:
            await self.inbox.drained()
        await self.outbox.flush(ids)

    async def advance(self, delta: timedelta) -> None:
        """Move the clock forward, fire due timers, deliver what they caused."""
        self.clock.advance(delta)
        await self.scheduler.fire_due()
        await self.scheduler.purge_if_due()
        await self.settle()

    async def start(self) -> None:
        """Migrate, sync config, start channels and loops, listen on http.host:port."""
        from bot.config_checks import config_warnings

        for warning in config_warnings(self.cfg):
            log.warning("config: %s", warning)
        log.info("database: %s", redact_url(self.cfg.storage.database_url))
        await self.db.upgrade()
        await sync_config(self.db, self.cfg, self.clock.now())
        warm_up()
        self.channels.update(registry.build(self.cfg, self.db, self.clock, self.limiter, self.outbox.kick,
                                            self.settle, self.advance, self.inbox))
        await self.inbox.start()
        for channel in self.channels.values():
            self.web.add_routes(channel.routes())
            await channel.start(self.dispatcher.handle)
        self.web.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(self.web, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.http.host, self.cfg.http.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.outbox.start()
        self.scheduler.start()
        log.info("wuwei is running on http://%s:%s (channels: %s)", self.cfg.http.host, self.port,
                 ", ".join(self.channels) or "none")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "channels": sorted(self.channels)})

    async def stop(self) -> None:
        """Stop loops and channels, close the server and the database."""
        await self.inbox.stop()  # what it holds unhandled is left to another worker or the next start
        await self.scheduler.stop()
        await self.outbox.stop()
        for channel in self.channels.values():
            await channel.stop()
        if self._runner:
            await self._runner.cleanup()
        aclose = getattr(self.limiter, "aclose", None)
        if aclose:
            await aclose()
        await self.db.dispose()
