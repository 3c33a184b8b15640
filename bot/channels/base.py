"""The seam every platform adapter implements; the core never imports a platform SDK."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from flows.types import Message
from handlers.events import Handled, InboundEvent

Dispatch = Callable[[InboundEvent], Awaitable[Handled]]


class NotHandled(Exception):
    """The core could not handle an event and kept nothing of it: it must not be acknowledged to the
    platform (webhook answers 5xx, polling does not move past it), so it comes again."""


async def dispatch_or_raise(dispatch: Dispatch, ev: InboundEvent) -> Handled:
    """Dispatch an event; raise NotHandled when it failed (see Handled.failed)."""
    handled = await dispatch(ev)
    if handled.failed:
        raise NotHandled(f"an event on {ev.channel} was not handled")
    return handled


async def dispatch_retrying(dispatch: Dispatch, ev: InboundEvent,
                            delays: tuple[float, ...] = (1.0, 3.0, 10.0)) -> Handled:
    """For transports that never deliver an event again (a websocket frame): retry a failed event here,
    a few times with pauses, before letting it go."""
    for delay in (*delays, None):
        handled = await dispatch(ev)
        if not handled.failed or delay is None:
            return handled
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class PermanentSendError(Exception):
    """The platform refused the message for good (blocked, chat gone): retrying will not help."""


class RetryLater(Exception):
    """The platform asked us to wait (rate limit): try this message again after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry after {delay:.1f}s")
        self.delay = delay


class WaitForInbound(Exception):
    """The platform lets us write to this chat only after the person writes again (WeCom kf's 48 h /
    5-messages rule): the outbox holds the row until the channel releases the chat's held rows."""


class Channel(Protocol):
    """One platform: its routes, how to send and edit; inbound events go to `dispatch`."""

    name: str

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes this channel serves (webhooks, simulator API)."""
        ...

    async def start(self, dispatch: Dispatch) -> None:
        """Begin receiving (polling, connections); inbound events are passed to `dispatch`."""
        ...

    async def stop(self) -> None:
        """Stop receiving and release resources."""
        ...

    async def send(self, chat_id: str, msg: Message, key: str | None = None) -> str:
        """Deliver a message; returns the platform's message id (for later edits). `key` names this delivery
        (the outbox row): a channel whose platform can recognise a repeat (the simulator) shows a message sent
        twice with the same key once and returns the first message's id; the others may ignore it."""
        ...

    async def edit(self, chat_id: str, message_id: str, msg: Message) -> None:
        """Replace a message's text and buttons in place."""
        ...
