"""The Telegram channel: python-telegram-bot as a transport only (a Bot with our base_url, no Application,
no ConversationHandler). Updates arrive by long polling (our own getUpdates loop, its offset kept in
channel_state) or by webhook on the bot's own aiohttp server; both are taken on by the inbox (bot/inbox.py),
durably, before they are acknowledged, and it hands them to `handle_update`.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from telegram import Bot, ReplyKeyboardRemove, Update
from telegram.error import ChatMigrated, InvalidToken, RetryAfter, TelegramError

from bot.channels.base import Dispatch, NotHandled, PermanentSendError, RetryLater, dispatch_or_raise
from bot.channels.telegram import inbound, outbound
from bot.channels.telegram.http import AiohttpRequest
from bot.channels.telegram.polling import ALLOWED_UPDATES, Poller, release
from bot.clock import Clock
from bot.config_channels import TelegramConfig
from bot.inbox import Inbox
from bot.leader import Lease
from bot.ratelimit import RateLimiter
from flows.i18n import t
from flows.types import Message
from handlers.context import message_payload
from storage import channel_repo, repo
from storage.db import Database, utcnow
from storage.models import GroupBinding, OutboxMessage
from storage.sql import rowcount

log = logging.getLogger(__name__)
os.environ.setdefault("PTB_TIMEDELTA", "1")  # PTB 22 reads it per call: durations as timedelta, no warnings
# httpx (INFO) and PTB (DEBUG) log request URLs, and ours carry the token
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("telegram").setLevel(logging.INFO)
NAME = inbound.NAME
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_LEASE = "telegram:webhook:"  # + the worker: one lease per running webhook worker
WEBHOOK_LEASE_TTL = 60.0
OK_BODY = '{"ok": true}'


class _Bot(Bot):
    """PTB's Bot with one more call."""

    async def send_text(self, chat_id: int, text: str, reply_markup: Any = None) -> Any:
        """sendMessage, as Bot.send_message makes it, but returning Telegram's JSON of the sent message: turning it
        into a Message object costs more CPU than the rest of the call, and only its id is kept."""
        data: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if reply_markup is not None:
            data["reply_markup"] = reply_markup
        return await self._post("sendMessage", data)


class TelegramChannel:
    """Residents in private chats, team groups with request cards and inline buttons."""

    name = NAME

    def __init__(self, cfg: TelegramConfig, db: Database, clock: Clock, limiter: RateLimiter, locale: str,
                 inbox: Inbox, kick: Callable[[], None] | None = None) -> None:
        assert cfg.token is not None, "config validation requires a token"
        self.cfg, self.db, self.clock, self.limiter, self.locale = cfg, db, clock, limiter, locale
        self.kick = kick or (lambda: None)
        self.inbox = inbox
        inbox.register(NAME, self._parse, self.handle_update)
        self._token = cfg.token.get_secret_value()
        api = cfg.api_base_url.rstrip("/")
        self.bot = _Bot(self._token, base_url=f"{api}/bot", base_file_url=f"{api}/file/bot",
                       request=AiohttpRequest(connection_pool_size=64, read_timeout=20.0),
                       get_updates_request=AiohttpRequest(connection_pool_size=2, read_timeout=10.0))
        self.username: str | None = None
        self._dispatch: Dispatch | None = None
        self._task: asyncio.Task[None] | None = None
        self._holder = f"{os.getpid()}:{id(self):x}"
        self._polling = cfg.transport == "polling"
        # in webhook mode each worker holds a lease of its own while it runs
        self._lease = Lease(db, WEBHOOK_LEASE + self._holder, ttl=WEBHOOK_LEASE_TTL, holder=self._holder)
        self._presence: asyncio.Task[None] | None = None
        self._keyboards: dict[str, bool] = {}  # private chat -> the share-phone keyboard is shown there

    # ---- Channel protocol --------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        """The webhook route (webhook mode only)."""
        return [] if self._polling else [web.post(self.cfg.webhook_path, self._webhook)]

    async def start(self, dispatch: Dispatch) -> None:
        """Register the webhook (or remove it for polling) and start receiving."""
        self._dispatch = dispatch
        connected = await self._connect()
        if self._polling or not connected:
            self._task = asyncio.create_task(self._run(connected), name="telegram")
        if not self._polling:
            self._presence = asyncio.create_task(self._present(), name="telegram-webhook-worker")

    async def stop(self) -> None:
        """Stop polling (the offset is saved after every batch) or delete the webhook."""
        for task in (self._task, self._presence):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        try:
            if self._polling:
                await release(self.db, self._holder)
            elif await self._last_webhook_worker():  # others still serve the webhook: leave it registered
                await self.bot.delete_webhook()
        except (TelegramError, OSError) as exc:
            log.warning("telegram: could not clean up on stop (%s)", type(exc).__name__)
        await self.bot.shutdown()

    async def send(self, chat_id: str, msg: Message, key: str | None = None) -> str:
        """sendMessage (split when longer than 4096); the id of the last part, which carries the buttons.
        A message with a document is a sendDocument, the text as its caption (or sent first when too long)."""
        if msg.document is not None:
            return await self._send_document(chat_id, msg)
        parts = outbound.split_text(msg.text)
        markup, keyboard = await self._markup(chat_id, msg)
        if len(parts) == 1:
            await self._reserve(chat_id)
            sent = str(await self._api(chat_id, lambda: self.bot.send_text(int(chat_id), parts[0], markup)))
        else:
            sent = await self._send_parts(chat_id, msg.text, parts, markup)
        if keyboard is not None:
            await self._set_state(f"keyboard:{chat_id}", keyboard)
            self._keyboards[chat_id] = bool(keyboard)
        return sent

    async def _send_document(self, chat_id: str, msg: Message) -> str:
        doc = msg.document
        assert doc is not None
        caption = msg.text if outbound.utf16_len(msg.text) <= outbound.MAX_CAPTION else None
        if msg.text and caption is None:
            await self.send(chat_id, Message(msg.text))
        await self._reserve(chat_id)
        return str(await self._api(chat_id, lambda: self.bot.send_document(
            int(chat_id), document=doc.content.encode(), filename=doc.filename, caption=caption or None)))

    async def edit(self, chat_id: str, message_id: str, msg: Message) -> None:
        """editMessageText with the new buttons (without reply_markup Telegram removes the old ones)."""
        parts = outbound.split_text(msg.text)
        markup = outbound.inline_markup(msg)
        await self._reserve(chat_id)
        await self._api(chat_id, lambda: self.bot.edit_message_text(parts[0], int(chat_id), int(message_id),
                                                                    reply_markup=markup), sending=False)
        if len(parts) > 1:  # rare: an edit grew past the limit; the rest follows as new messages, never cut
            await self._send_parts(chat_id, msg.text, parts[1:], None)

    # ---- webhook workers ---------------------------------------------------------------------------
    async def _present(self) -> None:
        """Keep this worker's webhook lease alive (the last worker to stop deletes the webhook)."""
        while True:
            await self._lease.renew()
            await asyncio.sleep(WEBHOOK_LEASE_TTL / 3)

    async def _last_webhook_worker(self) -> bool:
        await self._lease.release()
        async with self.db.transaction() as s:
            others = await channel_repo.live_lease_holders(s, WEBHOOK_LEASE, utcnow())
        return not others

    # ---- connection and polling --------------------------------------------------------------------
    async def _connect(self) -> bool:
        """getMe, then setWebhook (with the secret) or deleteWebhook; False if Telegram is unreachable."""
        try:
            await self.bot.initialize()
            self.username = self.bot.username
            if self._polling:
                await self.bot.delete_webhook()
            else:
                await self.bot.set_webhook(str(self.cfg.webhook_url), secret_token=self._secret(),
                                           allowed_updates=ALLOWED_UPDATES)
        except InvalidToken:
            log.error("telegram: the bot token was rejected (check channels.telegram.token)")
            return False
        except (TelegramError, OSError) as exc:
            log.warning("telegram: cannot reach the Bot API yet (%s); retrying", type(exc).__name__)
            return False
        log.info("telegram: connected as @%s (%s)", self.username, "polling" if self._polling else "webhook")
        return True

    async def _run(self, connected: bool) -> None:
        delay = 1.0
        while not connected:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
            connected = await self._connect()
        if self._polling:
            await Poller(self.bot, self.db, self.clock, self.cfg.poll_timeout, self._holder, self._take).run()

    # ---- inbound -----------------------------------------------------------------------------------
    def _secret(self) -> str:
        assert self.cfg.webhook_secret is not None, "config validation requires a webhook secret"
        return self.cfg.webhook_secret.get_secret_value()

    async def _webhook(self, request: web.Request) -> web.Response:
        """Answer 200 once the update is durable in the inbox (it is handled right after); 503 when it could not
        be written, so Telegram delivers it again."""
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret().encode()):
            log.warning("telegram: webhook call without the right secret token refused")
            raise web.HTTPUnauthorized()
        try:
            body = (await request.read()).decode()  # (not UTF-8: refused here, as any other bad body)
            update = self._parse(body)
        except Exception:  # malformed JSON or fields PTB cannot parse (a date out of range …): the caller's fault
            raise web.HTTPBadRequest(text="not a Telegram update") from None
        try:
            await self.inbox.accept(NAME, inbound.event_id(update), inbound.lane(update), body, update)
        except Exception:
            raise web.HTTPServiceUnavailable(text="not taken on; deliver it again") from None
        return web.Response(text=OK_BODY, content_type="application/json")

    def _parse(self, payload: str) -> Update:
        update = Update.de_json(json.loads(payload), self.bot)
        if update is None:
            raise ValueError("not a Telegram update")
        return update

    async def _take(self, update: Update) -> bool:
        """A polled update into the inbox; False when it could not be written (polling must not move past it)."""
        try:
            await self.inbox.accept(NAME, inbound.event_id(update), inbound.lane(update),
                                    json.dumps(update.to_dict()), update)
        except Exception as exc:
            log.warning("telegram: a polled update could not be taken on (%s); it comes again", type(exc).__name__)
            return False
        return True

    async def handle_update(self, update: Update) -> bool:
        """Dispatch one update; False when it was not handled and must come again (nothing of it was kept).
        A handled button press is always answered (its toast, or a short apology)."""
        answer = t(self.locale, "press.stale")  # a press we cannot place (inline or inaccessible message)
        try:
            ev = inbound.to_event(update, self.username)
            if ev is not None:
                assert self._dispatch is not None, "channel not started"
                answer = (await dispatch_or_raise(self._dispatch, ev)).answer or ""
            elif inbound.bot_added(update):
                await self._greet_group(update)
            elif (moved := inbound.migration(update)) is not None:
                await self._migrate(*moved)
        except NotHandled:
            log.warning("telegram: update %s not handled; it will come again", update.update_id)
            return False
        except Exception:  # not the core's failure (an update we cannot read): answering again would not help
            log.exception("telegram: handling update %s failed", update.update_id)
            answer = t(self.locale, "error.sorry_short")
        if update.callback_query is not None:
            await self._answer(update.callback_query.id, answer)
        return True

    async def _answer(self, query_id: str, text: str | None) -> None:
        try:
            await self.bot.answer_callback_query(query_id, text=(text or "")[:200] or None)
        except TelegramError as exc:  # too old, already answered: the press itself was handled
            log.info("telegram: answerCallbackQuery failed (%s)", type(exc).__name__)

    async def _greet_group(self, update: Update) -> None:
        """The bot was added to a group: explain /bind there (once, even if the update comes twice)."""
        assert update.my_chat_member is not None
        chat_id = str(update.my_chat_member.chat.id)
        log.info("telegram: added to a group chat")
        now = self.clock.now()
        try:
            async with self.db.transaction() as s:
                if not await repo.mark_processed(s, NAME, inbound.event_id(update), now):
                    return
                await repo.enqueue(s, now, NAME, chat_id, "message",
                                   message_payload(Message(t(self.locale, "telegram.group_added"))))
        except IntegrityError:
            return
        self.kick()

    async def _migrate(self, old: str, new: str) -> None:
        """A group became a supergroup with a new id: its team binding and its waiting messages follow it."""
        async with self.db.transaction() as s:
            await s.execute(sql_update(OutboxMessage).where(OutboxMessage.channel == NAME, OutboxMessage.chat_id == old,
                                                            OutboxMessage.status == "pending").values(chat_id=new))
        try:
            async with self.db.transaction() as s:
                moved = await rowcount(s, sql_update(GroupBinding).where(GroupBinding.channel == NAME,
                                                                     GroupBinding.chat_id == old).values(chat_id=new))
        except IntegrityError:  # the supergroup was bound already (someone sent /bind there)
            return
        if moved:
            log.info("telegram: a bound group was upgraded to a supergroup; binding moved")

    # ---- outbound ----------------------------------------------------------------------------------
    async def _reserve(self, chat_id: str) -> None:
        if not self.cfg.rate_limits:  # configured off; a 429 from the server is still obeyed (_api)
            return
        delay = await self.limiter.reserve(outbound.rules(chat_id))
        if delay > 0:
            raise RetryLater(delay)

    async def _api(self, chat_id: str, call: Callable[[], Any], sending: bool = True) -> int | None:
        """Run one Bot API call; the message id it returns (None for an edit that changed nothing)."""
        try:
            result = await call()
        except RetryAfter as exc:
            seconds = outbound.retry_seconds(exc)
            await self.limiter.block(outbound.chat_key(chat_id), seconds)
            raise RetryLater(seconds) from None
        except ChatMigrated as exc:
            await self._migrate(chat_id, str(exc.new_chat_id))
            if sending:  # this row (and the rest of the chat's queue) now has the new id: send it there
                raise RetryLater(0.0) from None
            raise PermanentSendError("the group moved to a new id; its old messages cannot be edited") from None
        except TelegramError as exc:
            if outbound.not_modified(exc):
                return None
            raise outbound.permanent_or_transient(exc, self._token) from None
        if isinstance(result, dict):  # (send_text: the message as JSON)
            return result.get("message_id")
        return getattr(result, "message_id", None)

    async def _markup(self, chat_id: str, msg: Message) -> tuple[Any, str | None]:
        """Inline buttons; in a private chat, the share-phone keyboard when the message asks for a phone,
        and its removal with the next message without buttons. Also what to remember once it is sent."""
        inline = outbound.inline_markup(msg)
        if inline is not None or chat_id.startswith("-"):
            return inline, None
        if msg.phone_button:
            return outbound.contact_keyboard(msg.phone_button), "phone"
        if await self._keyboard_shown(chat_id):
            return ReplyKeyboardRemove(), ""
        return None, None

    async def _keyboard_shown(self, chat_id: str) -> bool:
        """Whether the share-phone keyboard shows in this chat: read once, then known (each send used to read it)."""
        if chat_id not in self._keyboards:
            if len(self._keyboards) > 10_000:
                self._keyboards.clear()
            self._keyboards[chat_id] = bool(await self._get_state(f"keyboard:{chat_id}"))
        return self._keyboards[chat_id]

    async def _send_parts(self, chat_id: str, text: str, parts: list[str], markup: Any) -> str:
        """Send a long text part by part; progress is kept so a rate-limit pause never repeats a part."""
        key = f"split:{chat_id}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        done, last = json.loads(await self._get_state(key) or "[0, null]")
        for i in range(done, len(parts)):
            await self._reserve(chat_id)
            part, part_markup = parts[i], markup if i == len(parts) - 1 else None
            mid = await self._api(chat_id, partial(self.bot.send_text, int(chat_id), part, part_markup))
            done, last = i + 1, mid
            await self._set_state(key, json.dumps([done, last]))
        await self._set_state(key, "")
        return str(last)

    async def _get_state(self, key: str) -> str | None:
        async with self.db.transaction() as s:
            return await channel_repo.get_channel_state(s, NAME, key)

    async def _set_state(self, key: str, value: str) -> None:
        async with self.db.transaction() as s:
            await channel_repo.set_channel_state(s, NAME, key, value, self.clock.now())
