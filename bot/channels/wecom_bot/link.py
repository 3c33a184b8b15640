"""The robot's one WebSocket long connection, held only by the worker that holds the lease.

The official SDK (wecom-aibot-python-sdk 1.0.2) does the subscribe frame, heartbeats and replies; this
module decides WHEN to connect. Known SDK behaviour we design around (see PROTOCOLS.md): it ignores
`disconnected_event`, its receive loop ends silently after a clean server close, and its own reconnect
would make two workers kick each other forever. So the SDK's reconnect is off (max attempts 0) and a
supervisor loop, once per tick: renews the lease (drops the connection if it is lost), watches
`is_connected`, reconnects with exponential backoff, and after a `disconnected_event` (another
connection subscribed with our bot id) stands down and releases the lease, letting the election decide.
"""
from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from bot.clock import wait_event
from bot.leader import Lease

with warnings.catch_warnings():  # the SDK imports a name websockets>=14 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    from aibot import WSClient, WSClientOptions

log = logging.getLogger(__name__)
STABLE = 30.0  # seconds a connection must last before backoff starts from 1 s again
FrameHandler = Callable[[dict[str, Any]], Awaitable[None]]


class _SdkLog:
    """The SDK's logger, routed to ours without its debug lines (they print whole message bodies)."""

    def debug(self, message: str, *args: Any) -> None:
        """Dropped: frame bodies carry people's messages."""

    def info(self, message: str, *args: Any) -> None:
        """SDK progress."""
        log.debug("sdk: %s", message[:120])

    def warn(self, message: str, *args: Any) -> None:
        """SDK warnings (the content of an unknown or malformed frame is not logged)."""
        frame = message.startswith(("Received unknown frame", "Received invalid message format"))
        log.info("sdk: %s", message.split(":", 1)[0] if frame else message[:160])

    def error(self, message: str, *args: Any) -> None:
        """SDK errors."""
        log.warning("sdk: %s", message[:160])


class RobotLink:
    """Leader-elected, supervised connection; frames go to `on_message` / `on_event`."""

    def __init__(self, bot_id: str, secret: str, ws_url: str, lease: Lease, on_message: FrameHandler,
                 on_event: FrameHandler, tick: float = 1.0, auth_timeout: float = 10.0,
                 cooldown: float = 5.0, heartbeat_ms: int = 30000, renew_every: float = 3.0) -> None:
        self.bot_id, self._secret, self.ws_url, self.lease = bot_id, secret, ws_url, lease
        self.on_message, self.on_event = on_message, on_event
        self.tick, self.auth_timeout, self.cooldown, self.heartbeat_ms = tick, auth_timeout, cooldown, heartbeat_ms
        self.renew_every = renew_every
        self._renewed = 0.0
        self._ready_since = 0.0
        self.client: WSClient | None = None
        self._authed = False
        self._auth_failed = False
        self._attempts = 0
        self._next_try = 0.0
        self._standby_until = 0.0
        self._last_ready = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def ready(self) -> bool:
        """True while this worker leads and its connection is subscribed."""
        return bool(self.lease.held and self.client is not None and self._authed and self.client.is_connected)

    def down_for(self) -> float:
        """Seconds since the connection was last seen ready (0 while it is)."""
        if self.ready:
            self._last_ready = time.monotonic()
            return 0.0
        return time.monotonic() - self._last_ready

    def start(self) -> None:
        """Start the supervisor loop."""
        self._task = asyncio.create_task(self._run(), name="wecom_bot-link")

    async def stop(self) -> None:
        """Stop supervising, close the connection, give the lease up so another worker takes over."""
        self._stopping = True
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._drop("stopping")
        if self.lease.held:
            await self.lease.release()

    def kicked(self) -> None:
        """disconnected_event: another connection subscribed with our bot id. Stand down for a while."""
        log.warning("wecom_bot: another connection took the robot over; standing down for %.0fs", self.cooldown)
        self._standby_until = time.monotonic() + self.cooldown
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except Exception:
                log.exception("wecom_bot: supervisor step failed")
            await wait_event(self._wake, self.tick)
            self._wake.clear()

    async def _step(self) -> None:
        now = time.monotonic()
        if now < self._standby_until:
            await self._drop("kicked")
            if self.lease.held:
                await self.lease.release()
            return
        if self.ready and now - self._ready_since > STABLE:
            self._attempts = 0  # a connection that lasted: the next loss reconnects quickly again
        if self.ready and now - self._renewed < self.renew_every:
            return  # watching is_connected every tick; the lease is renewed every few seconds
        was_leader = self.lease.held
        if not await self.lease.renew():
            await self._drop("not the leader")
            return
        if not was_leader:
            self._last_ready = now  # a new leader's grace (sending.GRACE) runs from now, not from the worker's start
        self._renewed = now
        if self.ready:
            return
        if self.client is not None:
            await self._drop("connection lost")
            self._backoff()
        if now >= self._next_try:
            await self._connect()

    def _backoff(self) -> None:
        """Wait 1 s, 2 s, 4 s … at most 60 s before the next attempt."""
        delay = min(2.0 ** self._attempts, 60.0)
        self._attempts += 1
        self._next_try = time.monotonic() + delay
        log.info("wecom_bot: next connection attempt in %.0fs", delay)

    async def _connect(self) -> None:
        self._authed = self._auth_failed = False
        opts = WSClientOptions(bot_id=self.bot_id, secret=self._secret, ws_url=self.ws_url, max_reconnect_attempts=0,
                               heartbeat_interval=self.heartbeat_ms, logger=_SdkLog())
        client = WSClient(opts)
        client.on("authenticated", self._on_authenticated)
        client.on("error", self._on_error)
        client.on("disconnected", lambda reason: self._wake.set())
        client.on("message", self.on_message)
        client.on("event", self.on_event)
        self.client = client
        await client.connect()
        deadline = time.monotonic() + self.auth_timeout
        while not self._authed and not self._auth_failed and client.is_connected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.ready:
            self._ready_since = self._last_ready = time.monotonic()
            log.info("wecom_bot: connected and subscribed")
            return
        log.warning("wecom_bot: could not %s", "authenticate" if self._auth_failed else "connect")
        await self._drop("connect failed")
        self._backoff()

    def _on_authenticated(self) -> None:
        self._authed = True

    def _on_error(self, error: Exception) -> None:
        text = str(error)
        if text.startswith("Authentication failed"):
            self._auth_failed = True
        log.debug("wecom_bot: sdk error %s", type(error).__name__)

    async def _drop(self, why: str) -> None:
        """Close our connection (if any) and wait briefly for the close to finish."""
        if self.ready:
            self._last_ready = time.monotonic()
        client, self.client = self.client, None
        self._authed = False
        if client is None:
            return
        log.info("wecom_bot: dropping the connection (%s)", why)
        client.remove_all_listeners()
        client.on("error", lambda error: None)  # pyee raises on an "error" nobody listens to
        client.disconnect()
        for _ in range(100):
            if not client.is_connected:
                break
            await asyncio.sleep(0.02)
