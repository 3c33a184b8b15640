"""An instant stub of the Telegram Bot API for throughput benchmarks (aiohttp on 127.0.0.1).

Unlike tests/fakes/telegram.py it checks nothing, keeps no chat history and has no flood limits: every
call is answered at once with valid Bot API JSON, so the bot under test is the only thing measured. It
counts sendMessage calls per chat_id, which is how a benchmark checks that every accepted update got
its reply exactly once, and logs each one with its time (`log`), which is how bench.drain measures how
close the bot's sending comes to Telegram's limits.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from aiohttp import web

BOT_USER = {"id": 7712345678, "is_bot": True, "first_name": "五为志愿服务", "username": "wuwei_bench_bot"}


class StubBotApi:
    """`base_url` is what a bot's api_base_url (or PTB's base_url + "/bot") points at."""

    def __init__(self) -> None:
        self.sent: Counter[int] = Counter()  # sendMessage calls per chat_id
        self.calls: Counter[str] = Counter()  # every call per method
        self.log: list[tuple[float, int, str]] = []  # each sendMessage: (time.monotonic(), chat_id, text)
        self._message_id = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self, port: int = 0) -> StubBotApi:
        """Listen on 127.0.0.1 (a free port unless given)."""
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._runner:
            await self._runner.cleanup()

    def reset(self) -> None:
        """Forget the counts (between benchmark runs)."""
        self.sent.clear()
        self.calls.clear()
        self.log.clear()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls[method] += 1
        if request.content_type == "application/json":
            params: dict[str, Any] = await request.json() if request.can_read_body else {}
        else:
            params = dict(await request.post())
        result: Any = True
        if method == "getMe":
            result = {**BOT_USER, "can_join_groups": True, "can_read_all_group_messages": False,
                      "supports_inline_queries": False}
        elif method == "getWebhookInfo":
            result = {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        elif method in ("sendMessage", "editMessageText"):
            chat_id = int(params.get("chat_id") or 0)
            if method == "sendMessage":
                self.sent[chat_id] += 1
                self.log.append((time.monotonic(), chat_id, str(params.get("text") or "")))
            result = self._message(chat_id, str(params.get("text") or ""), params)
        elif method not in ("setWebhook", "deleteWebhook", "answerCallbackQuery", "editMessageReplyMarkup",
                            "sendChatAction"):
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.json_response({"ok": True, "result": result})

    def _message(self, chat_id: int, text: str, params: dict[str, Any]) -> dict[str, Any]:
        if "message_id" in params:
            message_id = int(params["message_id"])
        else:
            self._message_id += 1
            message_id = self._message_id
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        out: dict[str, Any] = {"message_id": message_id, "from": BOT_USER, "chat": chat, "date": int(time.time()),
                               "text": text}
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            out["reply_markup"] = markup
        return out
