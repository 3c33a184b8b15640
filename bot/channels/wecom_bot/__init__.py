"""The WeCom smart-robot channel ("wecom_bot"): request cards in volunteer group chats, claimed by a click.

Transport: Tencent's official SDK (`import aibot`) over its WebSocket long connection, held by exactly
one worker (link.py). Inbound: an @-mention in a group is a message (a command such as /bind), a
template_card_event is a button press. Outbound: aibot_send_msg (markdown, or a button_interaction
template card for a message with buttons); the card's task id is the message id.

Updating a card: WeCom lets a robot change a pushed card only in answer to a click, echoing that
click's req_id within 5 seconds (aibot_respond_update_msg). So:
- a click that changed the request (the winner's) leaves its req_id here; the outbox's refresh of the
  request then reaches edit(), which updates the card for everyone with it (no `userids`);
- a click that changed nothing (too late, not in the team, not a volunteer) gets the current card with
  the answer (the toast text) under it, for that member only (`userids` = the clicker);
- a change with no click to answer (a claim on another channel or by a coordinator, a cancel) cannot
  touch the card: a short markdown notice goes to the group instead (the card's first and new last
  line, e.g. "【为老服务 · 陪同就医】 编号 X / ✅ 已由 李明 接单"), once per change and group however many
  cards of the request it has; a request given back gets a fresh card; later progress (出发, 完成) is
  the claimer's own and does not ping the group.
Only the lease holder sends; on other workers send/edit raise RetryLater and the row waits for it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.channels.base import Dispatch, RetryLater, dispatch_retrying
from bot.channels.wecom_bot import cards
from bot.channels.wecom_bot.link import RobotLink
from bot.channels.wecom_bot.sending import Sender
from bot.clock import Clock
from bot.config import Config
from bot.leader import Lease
from bot.ratelimit import RateLimiter
from flows.types import Message
from handlers.events import InboundEvent
from storage.db import Database

log = logging.getLogger(__name__)
NAME = "wecom_bot"
IDENTITY_CHANNEL = "wecom"  # the robot sees corp userids: the same people as the corp app's
LEASE_NAME = "wecom_bot:connection"
UPDATE_WINDOW = 4.5  # WeCom allows 5 s after a click; keep a margin
CLICK_RETRY_DELAYS = (0.3, 1.0)  # a failed click is tried again within its update window
SEEN_FRAMES = 5000
HOUSEKEEPING_SECONDS = 3600.0


@dataclass
class _Slot:
    """A click whose req_id may still update its card once."""

    frame: dict[str, Any]
    user_id: str
    at: float
    used: bool = False

    def usable(self) -> bool:
        """Unused and still inside WeCom's 5-second window."""
        return not self.used and time.monotonic() - self.at < UPDATE_WINDOW


class WecomBotChannel:
    """Group cards and commands through the smart robot; only the lease holder talks to WeCom."""

    name = NAME

    def __init__(self, cfg: Config, db: Database, clock: Clock, limiter: RateLimiter,
                 settle: Callable[[list[int]], Awaitable[None]], lease_ttl: float = 8.0,
                 **link_options: Any) -> None:
        aibot = cfg.channels.wecom.aibot
        if not (aibot.bot_id and aibot.secret):
            raise ValueError("channels.wecom.aibot: bot_id and secret (or WUWEI_WECOM_AIBOT_SECRET) are required")
        self.settle = settle
        self.lease = Lease(db, LEASE_NAME, ttl=lease_ttl)
        self.link = RobotLink(aibot.bot_id, aibot.secret.get_secret_value(), aibot.ws_url, self.lease,
                              self._on_message, self._on_event, **link_options)
        self.sender = Sender(cfg, db, clock, limiter, self.link, NAME)
        self._dispatch: Dispatch | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._slots: dict[str, list[_Slot]] = {}
        self._inflight: Counter[str] = Counter()
        self._chores: asyncio.Task[None] | None = None

    # ---- Channel protocol --------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        """None: the robot talks over its own outgoing WebSocket connection."""
        return []

    async def start(self, dispatch: Dispatch) -> None:
        """Take part in the election for the connection."""
        self._dispatch = dispatch
        self.link.start()
        self._chores = asyncio.create_task(self._housekeeping(), name="wecom_bot-chores")

    async def stop(self) -> None:
        """Close the connection and release the lease (another worker takes over at once)."""
        if self._chores is not None:
            self._chores.cancel()
            await asyncio.gather(self._chores, return_exceptions=True)
        await self.link.stop()

    async def _housekeeping(self) -> None:
        """Hourly, on the leader: forget old card records."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                if self.link.ready:
                    await self.sender.prune()
            except Exception:
                log.exception("wecom_bot: housekeeping failed")

    async def send(self, chat_id: str, msg: Message, key: str | None = None) -> str:
        """Push a card (a message with buttons) or markdown into a chat; returns the task id."""
        return await self.sender.send(chat_id, msg)

    async def edit(self, chat_id: str, message_id: str, msg: Message) -> None:
        """Bring a pushed card up to date: with a click's req_id if one is waiting, else by a notice."""
        if self._inflight[message_id]:
            raise RetryLater(0.0)  # a click on this card is being handled: its outcome decides
        await self.sender.edit(chat_id, message_id, msg, lambda: self._take_slot(message_id))

    # ---- inbound -----------------------------------------------------------------------------------
    def _fresh(self, body: dict[str, Any]) -> bool:
        """Dedupe frames by msgid (the dispatcher dedupes durably too)."""
        msgid = str(body.get("msgid") or "")
        if not msgid or msgid in self._seen:
            return False
        self._seen[msgid] = None
        while len(self._seen) > SEEN_FRAMES:
            self._seen.popitem(last=False)
        return True

    async def _on_message(self, frame: dict[str, Any]) -> None:
        """An @-mention in a group: the text without the mention, as a group message."""
        try:
            body = frame.get("body") or {}
            if not self._fresh(body) or body.get("chattype") != "group" or body.get("msgtype") != "text":
                return  # 1:1 chats with the robot are not used: members talk to the corp app
            text = cards.strip_mention(str(_field(body, "text", "content")))
            user, chat = str(_field(body, "from", "userid")), str(body.get("chatid") or "")
            if not (text and user and chat):
                return
            ev = InboundEvent(channel=NAME, event_id=f"msg:{body['msgid']}", chat_id=chat, user_id=user,
                              chat_type="group", text=text[:4096], extra={"identity_channel": IDENTITY_CHANNEL})
            assert self._dispatch is not None
            await dispatch_retrying(self._dispatch, ev)  # a frame never comes again: retry it here
        except Exception:
            log.exception("wecom_bot: handling a message frame failed")

    async def _on_event(self, frame: dict[str, Any]) -> None:
        """disconnected_event: stand down; template_card_event: a button press."""
        try:
            body = frame.get("body") or {}
            event = body.get("event") or {}
            kind = event.get("eventtype") if isinstance(event, dict) else None
            if kind == "disconnected_event":
                self.link.kicked()
                return
            click = cards.card_click(event) if kind == "template_card_event" else None
            if click is not None and _field(body, "from", "userid") and self._fresh(body):
                await self._click(frame, body, click)
        except Exception:
            log.exception("wecom_bot: handling an event frame failed")

    async def _click(self, frame: dict[str, Any], body: dict[str, Any], click: cards.CardClick) -> None:
        user = str(_field(body, "from", "userid"))
        chat = str(body.get("chatid") or user)
        slot = _Slot(frame, user, time.monotonic())
        ev = InboundEvent(channel=NAME, event_id=f"click:{body['msgid']}", chat_id=chat, user_id=user,
                          chat_type="group" if body.get("chattype", "group") == "group" else "private",
                          kind="press", data=click.event_key, message_id=click.task_id,
                          extra={"identity_channel": IDENTITY_CHANNEL})
        assert self._dispatch is not None
        self._inflight[click.task_id] += 1
        try:
            handled = await dispatch_retrying(self._dispatch, ev, CLICK_RETRY_DELAYS)
        finally:
            self._inflight[click.task_id] -= 1
            if self._inflight[click.task_id] <= 0:
                del self._inflight[click.task_id]
        if handled.duplicate or handled.failed:
            return
        if handled.outbox_ids:  # this click changed the request: the refresh updates the card for all
            self._slots.setdefault(click.task_id, []).append(slot)
            try:
                await self.settle(handled.outbox_ids)
            finally:
                self._drop_slot(click.task_id, slot)
        if slot.usable():
            slot.used = True
            await self.sender.answer_click(frame, chat, click, user, handled.answer or "")

    def _take_slot(self, task_id: str) -> dict[str, Any] | None:
        """The req_id frame of a winning click on this card that can still update it, marked used."""
        for slot in self._slots.get(task_id, []):
            if slot.usable():
                slot.used = True
                return slot.frame
        return None

    def _drop_slot(self, task_id: str, slot: _Slot) -> None:
        slots = self._slots.get(task_id, [])
        if slot in slots:
            slots.remove(slot)
        if not slots:
            self._slots.pop(task_id, None)



def _field(body: dict[str, Any], outer: str, inner: str) -> object:
    """body[outer][inner], or "" when the frame is not shaped that way."""
    node = body.get(outer)
    return (node.get(inner) or "") if isinstance(node, dict) else ""
