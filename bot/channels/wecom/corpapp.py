"""Volunteers and coordinators through the corp's self-built app (自建应用).

Inbound: text messages and slash commands, and template_card_event clicks (a press; its ResponseCode
is stored for the card before dispatching). Outbound: text (split at 2048 bytes), a file (media/upload,
then msgtype file, its text sent first) or a button_interaction template card, to one member or to
"u1|u2|u3" in ONE message/send, within 30/min and 1000/h per member. Editing a card spends a stored
response code on message/update_template_card with atall=1, which changes every copy; without a code the
members get a short text instead.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from bot.channels.base import Dispatch, RetryLater, dispatch_or_raise
from bot.channels.wecom import render, store
from bot.channels.wecom.api import WecomApi, WecomError
from bot.channels.wecom.callback import CallbackCrypto, CallbackEndpoint
from bot.channels.wecom.kf import KfChannel
from bot.clock import Clock
from bot.config import Config
from bot.inbox import Inbox
from bot.ratelimit import RateLimiter, Rule
from flows import callbacks
from flows.i18n import t
from flows.types import Message
from handlers.context import message_payload
from handlers.events import InboundEvent
from storage import repo
from storage.db import Database

log = logging.getLogger(__name__)
NAME = "wecom"
PER_MINUTE, PER_HOUR = 30, 1000


def member_rules(users: list[str]) -> list[Rule]:
    """WeCom's per-member limits of one app (the excess would be dropped silently)."""
    return [r for u in users for r in (Rule(f"wc:min:{u}", PER_MINUTE, 60.0), Rule(f"wc:hour:{u}", PER_HOUR, 3600.0))]


class AppChannel:
    """The self-built app: 1:1 chats with corp members (chat id = userid, or "a|b|c" for one card to many)."""

    name = NAME

    def __init__(self, cfg: Config, db: Database, clock: Clock, api: WecomApi, limiter: RateLimiter,
                 kick: Callable[[], None], kf: KfChannel | None, inbox: Inbox) -> None:
        wc = cfg.channels.wecom
        assert wc.corp_id and wc.app.agent_id and wc.app.token and wc.app.encoding_aes_key
        self.cfg, self.db, self.clock, self.api, self.limiter, self.kick = cfg, db, clock, api, limiter, kick
        self.corp_id, self.agent_id, self.kf = wc.corp_id, wc.app.agent_id, kf
        crypto = CallbackCrypto(wc.app.token.get_secret_value(), wc.app.encoding_aes_key.get_secret_value(),
                                wc.corp_id)
        self.endpoint = CallbackEndpoint(NAME, wc.callback_path + "/app", crypto, db, clock, self._on_callback,
                                         inbox)
        self._dispatch: Dispatch | None = None

    # ---- Channel protocol ------------------------------------------------------------------------
    def routes(self) -> list[Any]:
        """The app's callback URL."""
        return self.endpoint.routes()

    async def start(self, dispatch: Dispatch) -> None:
        """Remember the dispatcher."""
        self._dispatch = dispatch

    async def stop(self) -> None:
        """Close the HTTP session (callbacks not handled yet wait in the inbox)."""
        await self.api.close()

    async def send(self, chat_id: str, msg: Message, key: str | None = None) -> str:
        """A card when the message has buttons (returns its task_id), else text in ≤2048-byte parts."""
        users = chat_id.split("|")
        if msg.buttons:
            task_id = _task_id(msg)
            await self._reserve(users, 1)
            res = await self.api.call("message/send", {"touser": chat_id, "msgtype": "template_card",
                                                       "agentid": self.agent_id,
                                                       "template_card": render.card(msg, task_id)})
            async with self.db.transaction() as s:
                await store.card_save(s, task_id, chat_id, render.digest(msg), self.clock.now())
                if res.get("response_code"):  # the sender's own code: an update without any click
                    await store.code_add(s, str(res["response_code"])[:128], task_id, self.clock.now())
            return task_id
        if msg.document is not None:
            return await self._send_document(chat_id, msg)
        parts = render.split_bytes(msg.text)
        await self._reserve(users, len(parts))
        msgid = ""
        for part in parts:
            res = await self.api.call("message/send", {"touser": chat_id, "msgtype": "text",
                                                       "agentid": self.agent_id, "text": {"content": part}})
            msgid = str(res.get("msgid") or uuid.uuid4().hex)
        return f"text:{msgid}"

    async def _send_document(self, chat_id: str, msg: Message) -> str:
        """The text (a caption) first, then the file: uploaded before anything is sent, so a failed upload
        sends nothing and the outbox tries the whole message again."""
        doc = msg.document
        assert doc is not None
        parts = render.split_bytes(msg.text) if msg.text else []
        await self._reserve(chat_id.split("|"), len(parts) + 1)
        media_id = await self.api.upload_file(doc.filename, doc.content.encode(), doc.mime)
        for part in parts:
            await self.api.call("message/send", {"touser": chat_id, "msgtype": "text", "agentid": self.agent_id,
                                                 "text": {"content": part}})
        res = await self.api.call("message/send", {"touser": chat_id, "msgtype": "file", "agentid": self.agent_id,
                                                   "file": {"media_id": media_id}})
        return f"file:{res.get('msgid') or uuid.uuid4().hex}"

    async def edit(self, chat_id: str, message_id: str, msg: Message) -> None:
        """Turn every copy of a card into `msg` (one response code, atall=1); texts cannot change."""
        async with self.db.transaction() as s:
            card = await store.card_get(s, message_id)
        if card is None:
            log.info("wecom: message %s is not a card; not edited", message_id[:40])
            return
        if card.digest == render.digest(msg):
            return  # nothing changed: keep the codes for a real change
        if not await self._update(message_id, msg) and self._worth_a_text(card.digest, chat_id, msg):
            await self.send(chat_id, Message(msg.text))  # no code left: a text instead, never fail
        async with self.db.transaction() as s:
            await store.card_save(s, message_id, chat_id, render.digest(msg), self.clock.now())

    @staticmethod
    def _worth_a_text(old_digest: str, chat_id: str, msg: Message) -> bool:
        """Without a code the change goes out as a text: always to one person, but to a team's on-duty
        members only when it changes what they can do (taken, open again), not the claimer's progress."""
        return "|" not in chat_id or old_digest.startswith("b") != bool(msg.buttons)

    async def _update(self, task_id: str, msg: Message) -> bool:
        while True:
            async with self.db.transaction() as s:
                code = await store.code_take(s, task_id, self.clock.now())
            if code is None:
                return False
            try:
                await self.api.call("message/update_template_card", {
                    "atall": 1, "agentid": self.agent_id, "response_code": code,
                    "template_card": render.card(msg, task_id)})
                return True
            except RetryLater:
                async with self.db.transaction() as s:  # rate limited: the code was not spent
                    await store.code_restore(s, code)
                raise
            except WecomError as exc:
                log.warning("wecom: card update refused (%s); trying another code", exc.errcode)

    async def _reserve(self, users: list[str], sends: int) -> None:
        for _ in range(sends):
            delay = await self.limiter.reserve(member_rules(users))
            if delay:
                raise RetryLater(delay)

    # ---- inbound -------------------------------------------------------------------------------
    async def _on_callback(self, msg: dict[str, str]) -> None:
        if msg.get("Event") == "kf_msg_or_event" and self.kf is not None and msg.get("ToUserName") == self.corp_id:
            await self.kf.on_kf_event(msg)  # kf managed by this app: WeCom posts its events to the app's URL
            return
        user = msg.get("FromUserName", "")
        if msg.get("ToUserName") != self.corp_id or not user or len(user) > 64:
            log.warning("wecom: callback for another corp or without a sender ignored")
            return
        if msg.get("AgentID") and msg["AgentID"] != str(self.agent_id):
            log.warning("wecom: callback for another app ignored")
            return
        ev = await self._event(msg, user)
        if ev is None:
            return
        if ev.kind == "message" and (ev.text or "").split()[:1] == ["/handback"] and self.kf is not None:
            await self._hand_back(ev)
            return
        assert self._dispatch is not None, "channel not started"
        handled = await dispatch_or_raise(self._dispatch, ev)  # not handled: the callback's retries try again
        if ev.kind == "press" and handled.answer and not handled.duplicate:
            await self._reply(user, handled.answer)  # the press's answer: a short text to the clicker

    async def _event(self, msg: dict[str, str], user: str) -> InboundEvent | None:
        mtype, event = msg.get("MsgType"), msg.get("Event")
        if mtype == "text":
            return InboundEvent(channel=NAME, event_id=f"msg:{msg.get('MsgId', '')}", chat_id=user, user_id=user,
                                text=msg.get("Content", "")[:2000])
        if mtype == "event" and event == "template_card_event":
            task_id, key = msg.get("TaskId", ""), msg.get("EventKey", "")
            code = msg.get("ResponseCode", "")
            if code and task_id:
                async with self.db.transaction() as s:
                    await store.code_add(s, code[:128], task_id[:128], self.clock.now())
            event_id = f"card:{user}:{msg.get('CreateTime', '')}:{task_id}:{key}"[:200]
            return InboundEvent(channel=NAME, event_id=event_id, chat_id=user, user_id=user, kind="press",
                                data=key, message_id=task_id)
        if mtype in ("image", "voice", "video", "file"):
            return InboundEvent(channel=NAME, event_id=f"msg:{msg.get('MsgId', '')}", chat_id=user, user_id=user,
                                kind="media")
        log.info("wecom: %s/%s ignored", mtype, event)
        return None

    async def _hand_back(self, ev: InboundEvent) -> None:
        async with self.db.transaction() as s:
            if not await repo.mark_processed(s, NAME, ev.event_id, self.clock.now()):
                return
        assert self.kf is not None
        count = await self.kf.handover.hand_back(ev.user_id)
        key = "wecom.handback_done" if count else "wecom.handback_none"
        await self._reply(ev.user_id, t(self.cfg.locale, key, count=count))

    async def _reply(self, user: str, text: str) -> None:
        async with self.db.transaction() as s:
            await repo.enqueue(s, self.clock.now(), NAME, user, "message", message_payload(Message(text)))
        self.kick()

    async def idle(self) -> None:
        """Wait for callbacks in progress (tests)."""
        await self.endpoint.idle()


def _task_id(msg: Message) -> str:
    """A card's task_id, unique per app ([0-9a-zA-Z_-@], ≤128 B): the request id plus a random part."""
    cb = next((callbacks.parse(b.data) for b in msg.flat_buttons()), None)
    prefix = f"r{cb.target}" if cb is not None and cb.target.isdigit() else "m"
    return f"{prefix}-{uuid.uuid4().hex[:20]}"
