"""WeCom callback endpoints (app and kf): URL check, signature, AES decryption and safe XML parsing.

The POST answers at once with an empty 200 and the work runs in a background task (WeCom gives up after
5 s and retries three times); a repeat of the same encrypted payload is dropped here, before any work.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from xml.etree.ElementTree import Element

from aiohttp import web
from defusedxml import ElementTree as SafeET
from sqlalchemy import delete
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import WeChatClientException, WeChatException

from bot.clock import Clock
from storage import repo
from storage.db import Database
from storage.models import ProcessedEvent

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # real callbacks are a few KB
RETRY_DELAYS = (1.0, 4.0, 10.0, 30.0)  # seconds before handling a failed callback again (a sync, a reply: idempotent)
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
    """GET (URL check) and POST (messages) on one path; `handle` runs after the 200 has been sent."""

    def __init__(self, name: str, path: str, crypto: CallbackCrypto, db: Database, clock: Clock,
                 handle: Handler) -> None:
        self.name, self.path, self.crypto, self.db, self.clock = name, path, crypto, db, clock
        self.handle = handle
        self.tasks: set[asyncio.Task[None]] = set()

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
        async with self.db.transaction() as s:
            fresh = await repo.mark_processed(s, f"{self.name}:cb", digest, self.clock.now())
        if fresh:
            task = asyncio.create_task(self._run(msg, digest), name=f"{self.name}-callback")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return web.Response(text="")

    async def _run(self, msg: dict[str, str], digest: str) -> None:
        for delay in (*RETRY_DELAYS, None):  # WeCom does not call again once it has had our 200
            try:
                await self.handle(msg)
                return
            except Exception:
                if delay is None:
                    log.exception("%s: handling a callback failed for good", self.name)
                    break
                log.warning("%s: handling a callback failed; again in %.0fs", self.name, delay, exc_info=True)
                await asyncio.sleep(delay)
        try:  # a late retry by WeCom (our 200 did not reach it in time) may still redo it
            async with self.db.transaction() as s:
                await s.execute(delete(ProcessedEvent).where(ProcessedEvent.channel == f"{self.name}:cb",
                                                             ProcessedEvent.event_id == digest))
        except Exception:
            log.exception("%s: could not forget a failed callback", self.name)

    async def idle(self) -> None:
        """Wait until every callback received so far has been handled (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Let running callbacks finish."""
        await self.idle()


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
