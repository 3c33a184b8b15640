"""What the smart robot pushes: cards and markdown through aibot_send_msg, card updates through a click's
req_id, and the notices that stand in for an update no click allows. Only the connection holder sends;
anyone else answers RetryLater so the outbox (shared by every worker through the database) tries the row
again and the leader's pass delivers it."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_

from bot.channels.base import PermanentSendError, RetryLater
from bot.channels.wecom_bot import cards
from bot.channels.wecom_bot.link import RobotLink
from bot.clock import Clock
from bot.config import Config
from bot.ratelimit import RateLimiter, Rule
from flows import callbacks
from flows.i18n import t
from flows.types import Message
from handlers.views import render
from storage import channel_repo, repo
from storage.db import Database
from storage.models import ChannelState
from storage.sql import rowcount

log = logging.getLogger(__name__)
GRACE = 30.0  # a leader without a connection this long counts failed attempts (so cards can fall back)
RATE_CODES = {45009, 45033}  # the platform says: too many
TRANSIENT_CODES = {-1, 6000}  # system busy / conflict: try again
ERRCODE_RE = re.compile(r"errcode=(-?\d+)")


def _errcode(exc: BaseException) -> int | None:
    match = ERRCODE_RE.search(str(exc))
    return int(match.group(1)) if match else None


class Sender:
    """Outbound side of the channel, with the per-card record kept in channel_state (any worker may
    become the leader, so what a card shows lives in the database, not in memory)."""

    def __init__(self, cfg: Config, db: Database, clock: Clock, limiter: RateLimiter, link: RobotLink,
                 channel: str) -> None:
        self.cfg, self.db, self.clock, self.limiter, self.link, self.channel = cfg, db, clock, limiter, link, channel
        self.closed_label = t(cfg.locale, "wecom_bot.closed_button")
        self._locks: dict[str, asyncio.Lock] = {}

    # ---- the connection ------------------------------------------------------------------------------
    def _client(self) -> Any:
        """The SDK client if this worker holds a live connection; otherwise the row waits."""
        client = self.link.client
        if self.link.ready and client is not None:
            return client
        if not self.link.lease.held or self.link.down_for() < GRACE:
            raise RetryLater(0.0)  # the leader (or the next one, within seconds) delivers it
        raise ConnectionError("the robot's connection is down")  # counted: after many, the card falls back

    async def _push(self, chat_id: str, body: dict[str, Any]) -> None:
        """aibot_send_msg within the per-chat limits (~30/min, 1000/h), errors mapped for the outbox."""
        client = self._client()
        key = f"wb:{chat_id}"
        delay = await self.limiter.reserve([Rule(key, 30, 60.0), Rule(key + ":h", 1000, 3600.0)])
        if delay:
            raise RetryLater(delay)
        try:
            await client.send_message(chat_id, body)
        except (RuntimeError, TimeoutError) as exc:
            code = _errcode(exc)
            if code is None or code in TRANSIENT_CODES:
                raise ConnectionError(f"aibot_send_msg failed ({type(exc).__name__})") from None
            if code in RATE_CODES:
                await self.limiter.block(key, 60.0)
                raise RetryLater(60.0) from None
            raise PermanentSendError(f"aibot_send_msg refused: errcode {code}") from None

    # ---- records -------------------------------------------------------------------------------------
    async def prune(self, keep: timedelta = timedelta(days=60)) -> int:
        """Forget card records and announcements older than `keep` (such requests are long settled)."""
        async with self.db.transaction() as s:
            return await rowcount(s, delete(ChannelState).where(
                ChannelState.channel == self.channel, ChannelState.updated_at < self.clock.now() - keep,
                or_(ChannelState.key.like("card:%"), ChannelState.key.like("said:%"))))

    async def _record(self, message_id: str) -> dict[str, Any] | None:
        async with self.db.transaction() as s:
            raw = await channel_repo.get_channel_state(s, self.channel, f"card:{message_id}")
        return json.loads(raw) if raw else None

    async def _remember(self, message_id: str, chat_id: str, msg: Message, **extra: Any) -> None:
        key = next((b.data for b in msg.flat_buttons()), None)
        old = await self._record(message_id) or {}
        rec = {"chat": chat_id, "text": msg.text, "open": bool(msg.buttons), "key": key or old.get("key"), **extra}
        async with self.db.transaction() as s:
            await channel_repo.set_channel_state(s, self.channel, f"card:{message_id}", json.dumps(rec),
                                                 self.clock.now())

    async def _fallback_team(self, chat_id: str) -> bool:
        async with self.db.transaction() as s:
            binding = await channel_repo.binding_of(s, self.channel, chat_id)
        return binding is not None and binding.team_id in self.cfg.channels.wecom.aibot.fallback_teams

    # ---- what the group was last told about a request -----------------------------------------------
    async def _group_card(self, key: str | None) -> Message | None:
        """The request's group card as it is now, found from a card's claim key (None if unknown)."""
        cb = callbacks.parse(key)
        if cb is None or cb.action != "claim" or not cb.target.isdigit():
            return None
        async with self.db.transaction() as s:
            req = await repo.get_request(s, int(cb.target))
            return await render(s, self.cfg, req, "group_card", self.channel, "", self.cfg.locale) if req else None

    async def _told(self, chat_id: str, scope: str, shown: Message, mark: bool) -> tuple[bool, bool]:
        """(whether the group already knows this state of the request, whether what it last knew was an
        open card). One announcement per change and chat, however many cards of the request it has;
        with `mark`, record that the group now knows this state."""
        key = f"said:{chat_id}:{scope}"
        value = hashlib.sha256(shown.text.encode()).hexdigest()[:32] + (" open" if shown.buttons else " closed")
        async with self.db.transaction() as s:
            last = await channel_repo.get_channel_state(s, self.channel, key)
            if mark and last != value:
                await channel_repo.set_channel_state(s, self.channel, key, value, self.clock.now())
        return last == value, last is None or last.endswith(" open")

    # ---- send and edit -------------------------------------------------------------------------------
    async def send(self, chat_id: str, msg: Message) -> str:
        """A card for a message with buttons, markdown otherwise; returns the task id."""
        self._client()
        if await self._fallback_team(chat_id):
            log.info("wecom_bot: a fallback team's group gets no robot cards (app cards instead)")
            return cards.new_task_id("s")  # skipped: edits of it do nothing
        task_id = cards.new_task_id("c" if msg.buttons else "m")
        if msg.buttons:
            card = cards.template_card(msg, task_id, self.closed_label)
            await self._push(chat_id, {"msgtype": "template_card", "template_card": card})
        else:
            for piece in cards.split_text(msg.text):  # a long answer (/open, /history) in several messages
                await self._push(chat_id, cards.markdown(piece))
        await self._remember(task_id, chat_id, msg)
        key = next((b.data for b in msg.flat_buttons()), None)
        if (current := await self._group_card(key)) is not None:
            await self._told(chat_id, key or task_id, current, mark=True)
        return task_id

    async def edit(self, chat_id: str, message_id: str, msg: Message,
                   take_click: Callable[[], dict[str, Any] | None]) -> None:
        """Update with a waiting click's req_id if there is one, else announce what changed (see the
        package doc); `take_click` hands out such a click frame at most once."""
        if message_id.startswith("s"):
            return
        client = self._client()
        async with self._locks.setdefault(message_id, asyncio.Lock()):
            rec = await self._record(message_id) or {"chat": chat_id, "text": "", "open": True, "key": None}
            if rec.get("gone") or (rec["text"] == msg.text and rec["open"] == bool(msg.buttons)):
                return
            scope = rec.get("key") or message_id
            shown = await self._group_card(rec.get("key")) or msg
            click = take_click() if cards.is_card_id(message_id) else None
            if click is not None:
                card = cards.template_card(msg, message_id, self.closed_label, closed_key=rec.get("key") or "")
                try:
                    await client.update_template_card(click, card)  # no userids: the card changes for everyone
                    await self._remember(message_id, chat_id, msg)
                    await self._told(chat_id, scope, shown, mark=True)
                    return
                except (RuntimeError, TimeoutError) as exc:
                    log.warning("wecom_bot: card update refused (%s); posting a notice", _errcode(exc))
            await self._announce(chat_id, message_id, msg, rec, scope, shown)

    async def _announce(self, chat_id: str, message_id: str, msg: Message, rec: dict[str, Any], scope: str,
                        shown: Message) -> None:
        """No click to update with: a notice for a closed request, a fresh card for a reopened one, once
        per change and chat however many cards of the request the chat has."""
        if msg.buttons and rec["open"]:
            await self._remember(message_id, chat_id, msg)  # still open, wording changed: nothing to tell
            return
        told, was_open = await self._told(chat_id, scope, shown, mark=False)
        if not told and shown.buttons:  # given back: a fresh card with the button (this one cannot get it)
            await self._repost(chat_id, shown)
        elif not told:
            if was_open:  # taken (or cancelled) while open; later progress (出发, 完成) is the claimer's own
                await self._push(chat_id, cards.markdown(cards.notice(shown)))
            await self._told(chat_id, scope, shown, mark=True)
        await self._remember(message_id, chat_id, msg, gone=bool(msg.buttons))

    async def _repost(self, chat_id: str, msg: Message) -> None:
        claim = next((cb for b in msg.flat_buttons() if (cb := callbacks.parse(b.data)) and cb.action == "claim"),
                     None)
        new_id = await self.send(chat_id, msg)
        if claim is not None and claim.target.isdigit():
            async with self.db.transaction() as s:
                await repo.add_ledger(s, int(claim.target), self.channel, chat_id, new_id, "group_card",
                                      self.clock.now())

    # ---- answering a click ---------------------------------------------------------------------------
    async def answer_click(self, frame: dict[str, Any], chat_id: str, click: cards.CardClick, user_id: str,
                           answer: str) -> None:
        """Show the clicker (only them) the card as it is now, with the answer to their click under it."""
        client = self.link.client
        msg = await self._current(click)
        if client is None or msg is None or not cards.is_card_id(click.task_id):
            return
        rec = await self._record(click.task_id) or {}
        card = cards.template_card(msg, click.task_id, self.closed_label, note=answer,
                                   closed_key=rec.get("key") or click.event_key)
        try:
            await client.update_template_card(frame, card, userids=[user_id])
        except (RuntimeError, TimeoutError) as exc:
            log.warning("wecom_bot: could not answer a click (%s)", _errcode(exc))

    async def _current(self, click: cards.CardClick) -> Message | None:
        """The group card of the clicked request as it is now (or the card's last text if unknown)."""
        if (current := await self._group_card(click.event_key)) is not None:
            return current
        rec = await self._record(click.task_id)
        return Message(rec["text"]) if rec else None
