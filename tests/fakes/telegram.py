"""A local fake of the Telegram Bot API (aiohttp on 127.0.0.1) that the real adapter talks to.

It accepts python-telegram-bot's real requests (`POST /bot<token>/<method>`, form-encoded or JSON,
`reply_markup` as a JSON string), checks required fields (tests/fixtures/telegram/methods.json, derived
from the Bot API spec) and limits, keeps every chat's messages and edits, serves getUpdates (long poll)
or delivers updates by webhook, enforces the flood limits and can be told to fail. Every request is
recorded with a time from the test's Clock, so rate limits are checked on the bot's own time line.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.web_request import FileField

from bot.clock import Clock
from tests.fakes.telegram_api import (
    MESSAGE_METHODS,
    SECRET_RE,
    SPEC,
    ApiError,
    Call,
    ChatMessage,
    Fault,
    check_markup,
    check_text,
    decode_params,
    fixture,
    utf16_len,
)

__all__ = ["RIGHT", "ApiError", "Call", "ChatMessage", "FakeTelegram", "Fault", "fixture", "utf16_len"]
RIGHT = object()  # deliver(..., secret=RIGHT): the secret the bot registered


class FakeTelegram:
    """The fake server; `base_url` is what the bot's `api_base_url` points at."""

    def __init__(self, token: str, clock: Clock, username: str = "wuwei_test_bot") -> None:
        self.token, self.clock, self.username = token, clock, username
        self.bot_id = int(token.split(":")[0])
        # flood limits as (messages, seconds): 20/min per group and 30/s overall are Telegram's figures; for
        # one chat it says "about 1/s, short bursts tolerated" [U]: the fake lets up to 8 through in 5 s
        self.limits = {"group": (20, 60.0), "chat": (8, 5.0), "global": (30, 1.0)}
        self.calls: list[Call] = []
        self.chats: dict[int, list[ChatMessage]] = {}
        self.chat_info: dict[int, dict[str, Any]] = {}
        self.blocked_users: set[int] = set()
        self.migrated: dict[int, int] = {}  # a group upgraded to a supergroup -> its new id
        self.faults: list[Fault] = []
        self.answers: dict[str, str] = {}  # callback query id -> the toast text ("" = none)
        self.open_queries: set[str] = set()
        self.pending: list[dict[str, Any]] = []  # updates not yet confirmed by getUpdates
        self.confirmed = 0  # every update_id below this was confirmed
        self.webhook: dict[str, Any] | None = None
        self.webhook_base: str | None = None  # "reverse proxy": where deliver() really posts
        self.returned_429 = 0
        self.flood_429 = 0  # 429s the bot provoked by going too fast (never injected)
        self.flood_reasons: list[str] = []
        self._blocked_until: dict[int, datetime] = {}
        self._next_update = 700000001
        self._next_message: dict[int, int] = {}
        self._next_query = 4000000000000000001
        self._arrived = asyncio.Event()
        self._closing = False
        self._poll_generation = 0
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.base_url = ""

    # ---- server ------------------------------------------------------------------------------------
    async def start(self) -> FakeTelegram:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self._http = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        """Stop serving (a waiting long poll returns at once)."""
        self._closing = True
        self._arrived.set()
        if self._http:
            await self._http.close()
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = Call(method, {}, self.clock.now())
        self.calls.append(call)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            call.params = params = await self._params(request)
            result = await self._call(method, params)
        except ApiError as exc:
            call.status = exc.status
            body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            if exc.migrate_to_chat_id is not None:
                body["parameters"] = {"migrate_to_chat_id": exc.migrate_to_chat_id}
            return web.json_response(body, status=exc.status)
        call.status = 200
        return web.json_response({"ok": True, "result": result})

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return decode_params(await request.json())
        return decode_params(dict(await request.post()))

    async def _call(self, method: str, p: dict[str, Any]) -> Any:
        spec = SPEC.get(method)
        if spec is None:
            raise ApiError(404, "Not Found")
        for name in spec["required"]:
            if p.get(name) in (None, ""):
                raise ApiError(400, f"Bad Request: parameter \"{name}\" is required")
        unknown = set(p) - set(spec["fields"])
        if unknown:
            raise ApiError(400, f"Bad Request: unknown parameters {sorted(unknown)}")
        self._inject(method, p.get("chat_id"))
        if method in MESSAGE_METHODS:
            self._flood_check(int(p["chat_id"]))
        return await getattr(self, "_m_" + method)(p)

    def _inject(self, method: str, chat_id: Any) -> None:
        for fault in self.faults:
            if fault.method == method and fault.times > 0 and fault.chat_id in (None, chat_id):
                fault.times -= 1
                if fault.status == 429:
                    self.returned_429 += 1
                    self._blocked_until[int(chat_id)] = self.clock.now() + timedelta(seconds=fault.retry_after or 1)
                    raise ApiError(429, f"Too Many Requests: retry after {fault.retry_after}", fault.retry_after)
                if fault.status == 403:
                    raise ApiError(403, "Forbidden: bot was kicked from the group chat")
                raise ApiError(fault.status, "Internal Server Error" if fault.status == 500 else "Bad Gateway")

    def _flood_check(self, chat_id: int) -> None:
        """Answer 429 as Telegram would when the bot goes faster than the limits (or ignores retry_after)."""
        now = self.clock.now()
        wait = (self._blocked_until.get(chat_id, now) - now).total_seconds()
        checks = [("global", None), ("chat", chat_id)] + ([("group", chat_id)] if chat_id < 0 else [])
        why = "retry_after not waited for"
        for kind, chat in checks:
            limit, window = self.limits[kind]
            recent = [c.at for c in self.sent_calls(chat) if c.at > now - timedelta(seconds=window)]
            if len(recent) >= limit and (recent[-limit] + timedelta(seconds=window) - now).total_seconds() > wait:
                wait, why = (recent[-limit] + timedelta(seconds=window) - now).total_seconds(), f"{kind} limit"
        if wait > 0:
            self.flood_reasons.append(why)
            self.returned_429 += 1
            self.flood_429 += 1
            retry = max(1, int(wait + 0.999))
            self._blocked_until[chat_id] = now + timedelta(seconds=retry)
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry)

    # ---- methods -----------------------------------------------------------------------------------
    def bot_user(self) -> dict[str, Any]:
        """The bot as a User object."""
        return {"id": self.bot_id, "is_bot": True, "first_name": "五为志愿服务", "username": self.username}

    async def _m_getMe(self, p: dict[str, Any]) -> dict[str, Any]:
        return {**self.bot_user(), "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _m_getUpdates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = int(p.get("offset") or 0)
        if offset > self.confirmed:
            self.confirmed = offset
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        self._poll_generation += 1  # a newer getUpdates terminates a waiting one, as Telegram does
        generation = self._poll_generation
        self._arrived.set()
        deadline = asyncio.get_running_loop().time() + float(p.get("timeout") or 0)
        while not self.pending:
            left = deadline - asyncio.get_running_loop().time()
            if generation != self._poll_generation:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that only one "
                                    "bot instance is running")
            if left <= 0 or self._closing:
                return []
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return []
        return self.pending[: int(p.get("limit") or 100)]

    async def _m_setWebhook(self, p: dict[str, Any]) -> bool:
        if not str(p["url"]).startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if "secret_token" in p and not SECRET_RE.fullmatch(str(p["secret_token"])):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": p["url"], "secret_token": p.get("secret_token"),
                        "allowed_updates": p.get("allowed_updates")}
        return True

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> bool:
        self.webhook = None
        if p.get("drop_pending_updates"):
            self.pending.clear()
        return True

    async def _m_getWebhookInfo(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(self.pending)}

    def _chat(self, chat_id: int) -> list[ChatMessage]:
        if chat_id in self.migrated:
            raise ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                           migrate_to_chat_id=self.migrated[chat_id])
        if chat_id not in self.chat_info:
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked_users:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return self.chats.setdefault(chat_id, [])

    async def _m_sendMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(p["chat_id"])
        chat = self._chat(chat_id)
        text = check_text(p)
        markup = check_markup(p.get("reply_markup"), inline_only=False)
        msg = ChatMessage(self._message_id(chat_id), chat_id, "bot", text, markup, [text])
        chat.append(msg)
        return self._message_json(msg)

    async def _m_sendDocument(self, p: dict[str, Any]) -> dict[str, Any]:
        """A file uploaded as multipart/form-data (a string would be a file_id or URL: not supported here)."""
        chat_id = int(p["chat_id"])
        chat = self._chat(chat_id)
        upload = p["document"]
        if not isinstance(upload, FileField):
            raise ApiError(400, "Bad Request: this fake takes uploaded files only (no file_id or URL)")
        content = upload.file.read()
        if not content:
            raise ApiError(400, "Bad Request: file must be non-empty")
        caption = str(p.get("caption") or "")
        if utf16_len(caption) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        markup = check_markup(p.get("reply_markup"), inline_only=False)
        msg = ChatMessage(self._message_id(chat_id), chat_id, "bot", caption, markup, [caption],
                          document=(upload.filename, content))
        chat.append(msg)
        return self._message_json(msg)

    def _find(self, p: dict[str, Any]) -> ChatMessage:
        if "inline_message_id" in p or "chat_id" not in p or "message_id" not in p:
            raise ApiError(400, "Bad Request: chat_id and message_id are required (no inline messages here)")
        for msg in self._chat(int(p["chat_id"])):
            if msg.message_id == int(p["message_id"]):
                if msg.sender != "bot":
                    raise ApiError(400, "Bad Request: message can't be edited")
                return msg
        raise ApiError(400, "Bad Request: message to edit not found")

    def _edit(self, msg: ChatMessage, text: str, markup: dict[str, Any] | None) -> dict[str, Any]:
        if markup is not None and not markup.get("inline_keyboard"):
            markup = None  # an empty inline keyboard removes the buttons
        if text == msg.text and markup == msg.reply_markup:
            raise ApiError(400, "Bad Request: message is not modified: specified new message content and reply "
                                "markup are exactly the same as a current content and reply markup of the message")
        msg.text, msg.reply_markup, msg.edits = text, markup, msg.edits + 1
        msg.versions.append(text)
        return self._message_json(msg)

    async def _m_editMessageText(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._find(p)
        return self._edit(msg, check_text(p), check_markup(p.get("reply_markup"), inline_only=True))

    async def _m_editMessageReplyMarkup(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._find(p)
        return self._edit(msg, msg.text, check_markup(p.get("reply_markup"), inline_only=True))

    async def _m_answerCallbackQuery(self, p: dict[str, Any]) -> bool:
        qid = str(p["callback_query_id"])
        if qid not in self.open_queries:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        text = str(p.get("text") or "")
        if len(text) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self.open_queries.discard(qid)
        self.answers[qid] = text
        return True

    async def _m_sendChatAction(self, p: dict[str, Any]) -> bool:
        self._chat(int(p["chat_id"]))
        return True

    def _message_id(self, chat_id: int) -> int:
        self._next_message[chat_id] = self._next_message.get(chat_id, 0) + 1
        return self._next_message[chat_id]

    def _message_json(self, msg: ChatMessage) -> dict[str, Any]:
        out = {"message_id": msg.message_id, "from": self.bot_user(), "chat": self.chat_info[msg.chat_id],
               "date": self.epoch(), "text": msg.text}
        if msg.document is not None:
            del out["text"]
            out["caption"] = msg.text
            out["document"] = {"file_id": f"doc{msg.chat_id}_{msg.message_id}", "file_unique_id": f"u{msg.message_id}",
                               "file_name": msg.document[0], "file_size": len(msg.document[1])}
        if msg.reply_markup and "inline_keyboard" in msg.reply_markup:
            out["reply_markup"] = msg.reply_markup
        return out

    def epoch(self) -> int:
        """The test clock's now as a Unix timestamp."""
        return int((self.clock.now() - datetime(1970, 1, 1)).total_seconds())

    # ---- what happened -----------------------------------------------------------------------------
    def sent_calls(self, chat_id: int | None = None) -> Iterator[Call]:
        """Successful message calls (sends and edits), optionally to one chat."""
        return (c for c in self.calls if c.method in MESSAGE_METHODS and c.status == 200
                and (chat_id is None or c.params.get("chat_id") == chat_id))

    def max_in_window(self, chat_id: int, seconds: float, methods: tuple[str, ...] = ("sendMessage",)) -> int:
        """The most messages this chat got within any `seconds`-long stretch of the bot's clock."""
        times = sorted(c.at for c in self.sent_calls(chat_id) if c.method in methods)
        return max((sum(1 for u in times[i:] if u < t + timedelta(seconds=seconds)) for i, t in enumerate(times)),
                   default=0)

    def count(self, method: str, **where: Any) -> int:
        """How many successful calls of `method` had these parameters."""
        return sum(1 for c in self.calls if c.method == method and c.status == 200
                   and all(c.params.get(k) == v for k, v in where.items()))

    # ---- the people's side -------------------------------------------------------------------------
    def open_chat(self, chat: dict[str, Any]) -> None:
        """The bot can now write to this chat (the user wrote first, or the bot was added to the group)."""
        self.chat_info[chat["id"]] = chat
        self.chats.setdefault(chat["id"], [])

    def new_update(self, body: dict[str, Any]) -> dict[str, Any]:
        """Give an update (built from a fixture) the next update_id."""
        body["update_id"] = self._next_update
        self._next_update += 1
        return body

    def user_message(self, payload: dict[str, Any], key: str = "message") -> dict[str, Any]:
        """Record a person's message in its chat and give it a message id (fixture payload, patched)."""
        msg = payload[key]
        self.open_chat(msg["chat"])
        if key == "message":
            msg["message_id"] = self._message_id(msg["chat"]["id"])
            text = msg.get("text") or ("[contact]" if "contact" in msg else "[location]" if "location" in msg else "")
            self.chats[msg["chat"]["id"]].append(ChatMessage(msg["message_id"], msg["chat"]["id"],
                                                             str(msg["from"]["id"]), text, None, [text]))
        msg["date"] = self.epoch()
        return self.new_update(payload)

    def callback(self, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """A button press: the update and its callback query id (which the bot must answer)."""
        qid = str(self._next_query)
        self._next_query += 1
        payload["callback_query"]["id"] = qid
        self.open_queries.add(qid)
        return self.new_update(payload), qid

    def enqueue(self, update: dict[str, Any]) -> None:
        """Make an update available to getUpdates."""
        self.pending.append(update)
        self._arrived.set()

    async def wait_confirmed(self, update_id: int, timeout: float = 20.0) -> None:
        """Wait until the bot confirmed this update (asked getUpdates for a higher offset)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.confirmed <= update_id:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"update {update_id} never confirmed (offset {self.confirmed})")
            await asyncio.sleep(0.01)

    async def deliver(self, update: dict[str, Any], secret: Any = RIGHT) -> int:
        """POST an update to the registered webhook (through `webhook_base`); returns the HTTP status."""
        assert self.webhook is not None and self._http is not None, "no webhook set"
        url = self.webhook["url"]
        if self.webhook_base:
            url = self.webhook_base + urlsplit(url).path
        headers = {}
        if secret is RIGHT:
            secret = self.webhook["secret_token"]
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        async with self._http.post(url, json=update, headers=headers) as r:
            await r.read()
            return r.status
