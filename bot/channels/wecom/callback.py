"""WeCom callback endpoints (app and kf): URL check, signature, AES decryption and safe XML parsing.

The POST answers with an empty 200 once the decrypted message is durable in the inbox (bot/inbox.py) and the
work runs right after (WeCom gives up after 5 s and retries three times): a worker killed after the 200 loses
nothing, another takes the message over. A repeat of an encrypted payload still waiting is not taken twice;
one already handled is dropped before any work.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from xml.etree.ElementTree import Element

from aiohttp import web
from defusedxml import ElementTree as SafeET
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import WeChatClientException, WeChatException

from bot.channels.base import NotHandled
from bot.clock import Clock
from bot.inbox import Inbox
from storage import repo
from storage.db import Database

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # real callbacks are a few KB
Handler = Callable[[dict[str, str]], Awaitable[None]]


class CallbackError(Exception):
    """A callback we refuse (4xx, nothing changes)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def parse_xml(text: str | bytes) -> dict[str, str]:
    """A flat dict of the root's children (DTDs and entities are refused: no billion laughs)."""
    try:
        root: Element = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as exc:  # ParseError, DTDForbidden, EntitiesForbidden …
        raise CallbackError(400, f"bad XML ({type(exc).__name__})") from None
    return {child.tag: (child.text or "").strip() for child in root}


class CallbackCrypto:
    """Verifies and decrypts one endpoint's callbacks (token + EncodingAESKey + corp id)."""

    def __init__(self, token: str, aes_key: str, corp_id: str) -> None:
        self.crypto = WeChatCrypto(token, aes_key, corp_id)

    def _query(self, query: dict[str, str], *names: str) -> list[str]:
        values = [query.get(n, "") for n in names]
        if not all(values) or any(len(v) > 512 for v in values):
            raise CallbackError(400, "missing signature parameters")
        return values

    def verify_url(self, query: dict[str, str]) -> str:
        """The plaintext echostr of a URL check (GET)."""
        sig, ts, nonce, echo = self._query(query, "msg_signature", "timestamp", "nonce", "echostr")
        try:
            return str(self.crypto.check_signature(sig, ts, nonce, echo))
        except (WeChatException, WeChatClientException, ValueError, TypeError) as exc:
            raise CallbackError(403, f"URL check refused ({type(exc).__name__})") from None

    def decrypt(self, query: dict[str, str], body: bytes) -> tuple[str, dict[str, str]]:
        """(the Encrypt value, the decrypted message as a dict) of a POST."""
        sig, ts, nonce = self._query(query, "msg_signature", "timestamp", "nonce")
        envelope = parse_xml(body)
        encrypt = envelope.get("Encrypt", "")
        if not encrypt:
            raise CallbackError(400, "no Encrypt element")
        try:
            plain = self.crypto.decrypt_message({"Encrypt": encrypt}, sig, ts, nonce)
        except (WeChatException, WeChatClientException) as exc:
            raise CallbackError(403, f"signature or corp id refused ({type(exc).__name__})") from None
        except Exception as exc:  # bad base64, padding, length: not from WeCom
            raise CallbackError(400, f"undecryptable ({type(exc).__name__})") from None
        return encrypt, parse_xml(plain)


class CallbackEndpoint:
    """GET (URL check) and POST (messages) on one path; `handle` runs from the inbox after the 200 was sent."""

    def __init__(self, name: str, path: str, crypto: CallbackCrypto, db: Database, clock: Clock,
                 handle: Handler, inbox: Inbox) -> None:
        self.name, self.path, self.crypto, self.db, self.clock = name, path, crypto, db, clock
        self.handle = handle
        self.inbox = inbox
        self.kind = f"{name}:cb"  # the inbox's and the dedupe table's name for these callbacks
        inbox.register(self.kind, json.loads, self._handle)

    def routes(self) -> list[web.RouteDef]:
        """The two routes of this endpoint."""
        return [web.get(self.path, self._get), web.post(self.path, self._post)]

    async def _get(self, request: web.Request) -> web.Response:
        try:
            return web.Response(text=self.crypto.verify_url(dict(request.query)))
        except CallbackError as exc:
            log.warning("%s URL check refused: %s", self.name, exc)
            return web.Response(status=exc.status)

    async def _post(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413)
        try:
            body = await _read_capped(request)
            encrypt, msg = self.crypto.decrypt(dict(request.query), body)
        except CallbackError as exc:
            log.warning("%s callback refused: %s", self.name, exc)
            return web.Response(status=exc.status)
        digest = hashlib.sha256(encrypt.encode()).hexdigest()
        item = {"digest": digest, "msg": msg}
        try:
            await self.inbox.accept(self.kind, digest, f"{self.name}:{msg.get('FromUserName', '')[:64]}",
                                    json.dumps(item), item)
        except Exception as exc:
            log.warning("%s: a callback could not be taken on (%s); WeCom sends it again", self.name,
                        type(exc).__name__)
            return web.Response(status=503)
        return web.Response(text="")

    async def _handle(self, item: dict[str, Any]) -> bool:
        """Handle one callback (from the inbox); an exception is tried again there, a bounded number of times."""
        async with self.db.read() as s:
            if await repo.was_processed(s, self.kind, item["digest"]):
                return True  # WeCom's late retry of one already handled
        try:
            await self.handle(item["msg"])
        except NotHandled:
            return False  # the core kept nothing of it: again after a pause
        async with self.db.transaction() as s:  # (a worker killed before this redoes it: the effects are deduped)
            await repo.mark_processed(s, self.kind, item["digest"], self.clock.now())
        return True

    async def idle(self) -> None:
        """Wait until every callback received so far has been handled, after its retries (tests)."""
        await self.inbox.drained(waiting=True)


async def _read_capped(request: web.Request) -> bytes:
    """The body, refusing more than MAX_BODY bytes even without a Content-Length."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise CallbackError(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)
