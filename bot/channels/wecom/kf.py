"""Residents through 微信客服 (kf): callbacks → kf/sync_msg → the flows; replies within kf's rules.

kf lets the bot write only within 48 h of the resident's last message and at most 5 messages per
resident message. The budget lives in the database (several workers share it); what does not fit
raises WaitForInbound, the outbox holds the row, and the resident's next message releases it.
"""
from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import quote

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.base import Dispatch, NotHandled, PermanentSendError, RetryLater, WaitForInbound, dispatch_or_raise
from bot.channels.wecom import render, store
from bot.channels.wecom.api import WecomApi, WecomError
from bot.channels.wecom.callback import CallbackCrypto, CallbackEndpoint
from bot.channels.wecom.handover import Handover
from bot.clock import Clock
from bot.config import Config
from bot.inbox import Inbox
from bot.outbox import release_held
from flows import safety
from flows.i18n import t, words
from flows.types import Message
from handlers.context import message_payload
from handlers.events import InboundEvent
from storage import channel_repo, repo
from storage.db import Database
from storage.models import OutboxMessage

log = logging.getLogger(__name__)
NAME = "wecom_kf"
LIMIT_ERRORS = (95001, 95002)  # over the 5-message limit / outside the 48 h window
REHOLD_FAILS = {4, 6}  # msg_send_fail: session expired, over the limit — the resident must write first
MAX_PAGES = 100


def contact_key(station_id: str) -> str:
    """The channel_state key under which a station's kf link is published (read by /kflink)."""
    return f"contact_link:{station_id}"


class KfChannel:
    """The 微信客服 account residents talk to."""

    name = NAME

    def __init__(self, cfg: Config, db: Database, clock: Clock, api: WecomApi, kick: Callable[[], None],
                 inbox: Inbox) -> None:
        wc = cfg.channels.wecom
        assert wc.corp_id and wc.kf.open_kfid and wc.kf.token and wc.kf.encoding_aes_key
        self.cfg, self.db, self.clock, self.api, self.kick = cfg, db, clock, api, kick
        self.open_kfid = wc.kf.open_kfid
        crypto = CallbackCrypto(wc.kf.token.get_secret_value(), wc.kf.encoding_aes_key.get_secret_value(), wc.corp_id)
        self.endpoint = CallbackEndpoint(NAME, wc.callback_path + "/kf", crypto, db, clock, self._on_callback,
                                         inbox)
        self._dispatch: Dispatch | None = None
        self._sync_lock = asyncio.Lock()
        self._links: asyncio.Task[None] | None = None
        self.handover = Handover(self)

    # ---- Channel protocol ------------------------------------------------------------------------
    def routes(self) -> list[Any]:
        """The kf callback URL."""
        return self.endpoint.routes()

    async def start(self, dispatch: Dispatch) -> None:
        """Remember the dispatcher; publish the stations' kf links in the background."""
        self._dispatch = dispatch
        self._links = asyncio.create_task(self.publish_links(), name="wecom-kf-links")

    async def stop(self) -> None:
        """Stop publishing links, close the HTTP session (callbacks not handled yet wait in the inbox)."""
        if self._links:
            self._links.cancel()
            await asyncio.gather(self._links, return_exceptions=True)
        await self.api.close()

    async def send(self, chat_id: str, msg: Message, key: str | None = None) -> str:
        """Send within the budget (a message with buttons is one msgmenu), else hold it. A document takes two
        messages of the budget (its caption, then the file) and is uploaded before anything is sent: a failed
        upload gives the budget back and the outbox tries the whole message again."""
        payloads = render.kf_payloads(msg)
        async with self.db.transaction() as s:
            if await store.kf_has_held(s, chat_id) or not await store.kf_reserve(s, chat_id, len(payloads),
                                                                                   self.clock.now()):
                raise WaitForInbound()
        media_id = ""
        if msg.document is not None:
            try:
                media_id = await self.api.upload_file(msg.document.filename, msg.document.content.encode(),
                                                      msg.document.mime)
            except Exception as exc:
                await self._refused(chat_id, len(payloads), exc)
        msgid = ""
        for i, body in enumerate(payloads):
            msgid = f"wu{uuid.uuid4().hex[:28]}"
            if body["msgtype"] == "file":
                body = {**body, "file": {"media_id": media_id}}
            try:
                await self.api.call("kf/send_msg", {"touser": chat_id, "open_kfid": self.open_kfid,
                                                    "msgid": msgid, **body})
            except (WecomError, RetryLater) as exc:
                await self._refused(chat_id, len(payloads) - i, exc)
            except Exception:
                # no answer (the connection dropped, a timeout): WeCom may have taken this part, so it stays
                # counted (never more than WeCom's 5); the parts never tried are given back; the outbox retries
                if i + 1 < len(payloads):
                    async with self.db.transaction() as s:
                        await store.kf_refund(s, chat_id, len(payloads) - i - 1)
                raise
            async with self.db.transaction() as s:
                await store.kf_record_sent(s, msgid, chat_id, _sent_part(msg, body), self.clock.now())
        return msgid

    async def _refused(self, user: str, unsent: int, exc: Exception) -> NoReturn:
        """WeCom did not take a send: give back the unused budget and say what the outbox should do."""
        limited = isinstance(exc, WecomError) and exc.errcode in LIMIT_ERRORS
        async with self.db.transaction() as s:
            if limited:
                await store.kf_exhaust(s, user)
            else:
                await store.kf_refund(s, user, unsent)
        if limited:
            raise WaitForInbound() from exc
        if isinstance(exc, WecomError) and exc.errcode == 95000:
            raise PermanentSendError("invalid open_kfid") from exc
        raise exc

    async def edit(self, chat_id: str, message_id: str, msg: Message) -> None:
        """kf messages cannot be changed once sent."""
        raise PermanentSendError("kf messages cannot be edited")

    # ---- inbound -------------------------------------------------------------------------------
    async def on_kf_event(self, msg: dict[str, str]) -> None:
        """A decrypted kf_msg_or_event callback, on the kf URL or (kf managed by the app) the app's URL."""
        await self._on_callback(msg)

    async def _on_callback(self, msg: dict[str, str]) -> None:
        if msg.get("Event") != "kf_msg_or_event" or not msg.get("Token"):
            log.info("kf callback ignored (%s)", msg.get("Event") or msg.get("MsgType"))
            return
        if (msg.get("OpenKfId") or self.open_kfid) != self.open_kfid:
            log.info("kf callback for another kf account of the corp ignored")
            return  # its customers are not our residents, and our account could not answer them
        await self.sync(msg["Token"], self.open_kfid)

    async def sync(self, token: str, open_kfid: str) -> None:
        """Pull new messages with kf/sync_msg from the persisted cursor, page by page."""
        async with self._sync_lock:
            key = f"cursor:{open_kfid}"
            async with self.db.transaction() as s:
                cursor = await channel_repo.get_channel_state(s, NAME, key) or ""
            for _ in range(MAX_PAGES):
                page = await self.api.call("kf/sync_msg", {"cursor": cursor, "token": token, "limit": 1000,
                                                           "open_kfid": open_kfid})
                for item in page.get("msg_list") or []:
                    await self._item(item)  # not handled: the cursor stays before this page (redone, deduped)
                cursor = str(page.get("next_cursor") or cursor)
                async with self.db.transaction() as s:
                    await channel_repo.set_channel_state(s, NAME, key, cursor, self.clock.now())
                if not page.get("has_more"):
                    break

    async def _item(self, item: dict[str, Any]) -> None:
        try:
            if item.get("msgtype") == "event":
                await self._event(item.get("event") or {}, str(item.get("msgid", "")))
            elif item.get("origin") == 3:
                await self._resident(item)
        except NotHandled:
            raise  # the core failed: stop here, the cursor must not move past this message
        except (KeyError, TypeError, ValueError):
            log.exception("kf: a synced message could not be read; skipped")

    async def _resident(self, item: dict[str, Any]) -> None:
        user, msgid = str(item["external_userid"]), str(item["msgid"])
        sent_at = datetime.fromtimestamp(int(item.get("send_time") or 0), UTC).replace(tzinfo=None)
        now = self.clock.now()
        async with self.db.transaction() as s:
            kfid = str(item.get("open_kfid") or self.open_kfid)
            fresh = await store.kf_inbound(s, user, kfid, msgid, sent_at, now)
            session = await store.kf_session(s, user)
            serving = session.servicer if session else None
            released = await release_held(s, NAME, user, now) if fresh and not serving else 0
            hint = await channel_repo.get_channel_state(s, NAME, f"station:{user}")
        if released:
            self.kick()
        ev = self._inbound(item, user, msgid, hint) if not serving or item.get("msgtype") == "text" else None
        if serving:
            # a person serves this resident: the bot stays silent, but words of danger still open a crisis case
            # (what the bot would say to the resident is held until the hand-over ends)
            if ev is not None and ev.kind == "message" and safety.detect(ev.text):
                await self.dispatch(ev)
            return
        if ev is None:
            return
        if ev.kind == "message" and (ev.text or "").strip().lower() in words("kw.human"):
            await self.handover.request(user, msgid)
            return
        await self.dispatch(ev)

    def _inbound(self, item: dict[str, Any], user: str, msgid: str, hint: str | None) -> InboundEvent | None:
        kind, text, data, location = "message", None, None, None
        mtype = item.get("msgtype")
        if mtype == "text":
            text = str((item.get("text") or {}).get("content", ""))[:2000]
            data = (item.get("text") or {}).get("menu_id") or None
            kind = "press" if data else "message"
        elif mtype == "location":
            loc = item.get("location") or {}
            location = f"{loc.get('name', '')} {loc.get('address', '')}".strip()[:200]
        elif mtype in ("image", "voice", "video", "file"):
            kind = "media"
        else:
            log.info("kf: message type %s ignored", mtype)
            return None
        return InboundEvent(channel=NAME, event_id=msgid, chat_id=user, user_id=user, kind=kind,  # type: ignore[arg-type]
                            text=text, data=data, location=location,
                            extra={"station_hint": hint} if hint else {})

    async def dispatch(self, ev: InboundEvent) -> None:
        """Hand an event to the core; a press's answer is queued as a short reply."""
        assert self._dispatch is not None, "channel not started"
        handled = await dispatch_or_raise(self._dispatch, ev)
        if ev.kind == "press" and handled.answer and not handled.duplicate:
            await self.say(ev.chat_id, Message(handled.answer))

    async def say(self, user: str, msg: Message, channel: str = NAME) -> None:
        """Queue a message through the outbox (budget and holding apply)."""
        async with self.db.transaction() as s:
            await repo.enqueue(s, self.clock.now(), channel, user, "message", message_payload(msg))
        self.kick()

    # ---- events --------------------------------------------------------------------------------
    async def _event(self, ev: dict[str, Any], msgid: str) -> None:
        async with self.db.transaction() as s:
            if not await repo.mark_processed(s, NAME, f"evt:{msgid}", self.clock.now()):
                return
        kind = ev.get("event_type")
        user = str(ev.get("external_userid") or "")
        if kind == "enter_session":
            await self._welcome(user, str(ev.get("scene_param") or ""), str(ev.get("welcome_code") or ""))
        elif kind == "msg_send_fail":
            await self._send_failed(user, str(ev.get("fail_msgid") or ""), int(ev.get("fail_type") or 0))
        elif kind == "session_status_change":
            await self.handover.status_changed(user, int(ev.get("change_type") or 0),
                                               ev.get("new_servicer_userid"))

    async def _welcome(self, user: str, scene_param: str, code: str) -> None:
        station = self.cfg.catalog().station(scene_param) if scene_param else None
        if station is not None:
            async with self.db.transaction() as s:
                await channel_repo.set_channel_state(s, NAME, f"station:{user}", station.id, self.clock.now())
        if not code:
            return
        where = t(self.cfg.locale, "wecom.kf_where", community=station.community) if station else ""
        text = t(self.cfg.locale, "wecom.kf_welcome", center=self.cfg.org.center.name, where=where)
        try:
            await self.api.call("kf/send_msg_on_event", {"code": code, "msgid": f"wu{uuid.uuid4().hex[:28]}",
                                                         "msgtype": "text", "text": {"content": text}})
        except (WecomError, RetryLater) as exc:
            log.warning("kf: welcome not sent (%s)", exc)

    async def _send_failed(self, user: str, fail_msgid: str, fail_type: int) -> None:
        log.warning("kf: a message was not delivered (fail_type %s)", fail_type)
        async with self.db.transaction() as s:
            sent = await store.kf_sent(s, fail_msgid) if fail_type in REHOLD_FAILS else None
            if sent is None:
                await store.kf_count_failure(s, user)
                return
            await store.kf_exhaust(s, user, failed=True)
            row_id = await repo.enqueue(s, self.clock.now(), NAME, sent.external_userid, "message", sent.payload)
            await _hold(s, row_id)

    # ---- links -------------------------------------------------------------------------------------
    async def publish_links(self) -> None:
        """Create a kf link per station (kf/add_contact_way) once; /kflink prints it."""
        for station in self.cfg.stations():
            key = contact_key(station.id)
            async with self.db.transaction() as s:
                if await channel_repo.get_channel_state(s, NAME, key):
                    continue
            scene = re.sub(r"[^0-9a-zA-Z_-]", "_", station.id)[:32]
            try:
                res = await self.api.call("kf/add_contact_way", {"open_kfid": self.open_kfid, "scene": scene})
            except Exception as exc:
                log.warning("kf: could not create the link of station %s (%s)", station.id, exc)
                return
            url = f"{res['url']}&scene_param={quote(station.id)}"
            async with self.db.transaction() as s:
                await channel_repo.set_channel_state(s, NAME, key, url, self.clock.now())

    async def idle(self) -> None:
        """Wait for callbacks in progress (tests)."""
        await self.endpoint.idle()


def _sent_part(msg: Message, body: dict[str, Any]) -> dict[str, Any]:
    """What a sent kf message was, as an outbox payload (a msg_send_fail queues it again): a file is the document
    itself (uploaded again then: a media_id lasts only 3 days)."""
    if body["msgtype"] == "file":
        return message_payload(Message("", document=msg.document))
    if body["msgtype"] == "msgmenu":
        return message_payload(Message(msg.text, msg.buttons, msg.phone_button))
    return message_payload(Message(body["text"]["content"]))


async def _hold(s: AsyncSession, row_id: int) -> None:
    """Put a freshly queued row on hold until the resident writes."""
    await s.execute(update(OutboxMessage).where(OutboxMessage.id == row_id).values(status="held"))
