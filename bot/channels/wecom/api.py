"""The WeCom server API over aiohttp (wechatpy is synchronous and hard-codes its host): a cached,
shared access_token refreshed once per 40014/42001, and 45009 turned into RetryLater. Files go up with
media/upload (multipart) first; the media_id it returns is what a file message carries."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot.channels.base import PermanentSendError, RetryLater
from bot.clock import Clock
from storage import channel_repo
from storage.db import Database

log = logging.getLogger(__name__)
TOKEN_ERRORS = (40014, 42001)  # invalid / expired access_token
RATE_LIMITED = 45009
MARGIN = timedelta(minutes=5)  # refresh a little before WeCom's 7200 s are up
LEASE_WAITS = 50  # × 0.1 s: how long a worker waits for another one's fetch before fetching itself
# media/upload (developer.work.weixin.qq.com/document/path/90253): type=file, 5 bytes < size ≤ 20 MB; the media_id
# is valid 3 days and shared by every app of the corp (so kf may send what the app's token uploaded, and back)
FILE_MIN_BYTES, FILE_MAX_BYTES = 6, 20 * 1024 * 1024


class WecomError(Exception):
    """WeCom answered with a non-zero errcode."""

    def __init__(self, path: str, errcode: int, errmsg: str) -> None:
        super().__init__(f"{path}: errcode {errcode} ({errmsg[:80]})")
        self.errcode = errcode


class WecomApi:
    """Calls for one secret (the app's or kf's); its token is shared through the database."""

    def __init__(self, base_url: str, corp_id: str, secret: str, key: str, db: Database, clock: Clock) -> None:
        self.base = base_url.rstrip("/") + "/cgi-bin/"
        self.corp_id, self._secret, self.key, self.db, self.clock = corp_id, secret, key, db, clock
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.token_fetches = 0
        self.holder = uuid.uuid4().hex

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def _cached(self) -> str | None:
        async with self.db.transaction() as s:
            raw = await channel_repo.get_channel_state(s, "wecom", f"token:{self.key}")
        if not raw:
            return None
        data = json.loads(raw)
        if self.clock.now() >= datetime.fromisoformat(data["expires_at"]):
            return None
        return str(data["token"])

    async def token(self, stale: str | None = None) -> str:
        """A valid access_token: the shared cached one, else fetched once (also when `stale` failed).
        Across workers a lease decides who fetches; the others wait for the cached value."""
        async with self._lock:
            cached = await self._cached()
            if cached is not None and cached != stale:
                return cached
            lease = f"wecom-token:{self.key}"
            for _ in range(LEASE_WAITS):
                async with self.db.transaction() as s:
                    if await channel_repo.try_lease(s, lease, self.holder, self.clock.now(), 30):
                        break
                await asyncio.sleep(0.1)  # another worker is fetching it
                cached = await self._cached()
                if cached is not None and cached != stale:
                    return cached
            try:
                cached = await self._cached()  # another worker may have fetched it just before we got the lease
                if cached is not None and cached != stale:
                    return cached
                return await self._fetch()
            finally:
                async with self.db.transaction() as s:
                    await channel_repo.release_lease(s, lease, self.holder)

    async def _fetch(self) -> str:
        data = await self._request("GET", "gettoken", params={"corpid": self.corp_id, "corpsecret": self._secret})
        self.token_fetches += 1
        until = self.clock.now() + timedelta(seconds=int(data.get("expires_in", 7200))) - MARGIN
        value = json.dumps({"token": data["access_token"], "expires_at": until.isoformat()})
        async with self.db.transaction() as s:
            await channel_repo.set_channel_state(s, "wecom", f"token:{self.key}", value, self.clock.now())
        log.info("WeCom access_token (%s) fetched", self.key)
        return str(data["access_token"])

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON call; the token is refreshed once if WeCom says it is invalid or expired."""
        data = json.dumps(body, ensure_ascii=False).encode()
        return await self._authorized(path, {}, lambda: data)

    async def upload_file(self, filename: str, content: bytes, mime: str) -> str:
        """media/upload?type=file (multipart, field "media" with the file name WeCom shows): the media_id.
        A file outside WeCom's size limits is refused here for good (PermanentSendError)."""
        if not FILE_MIN_BYTES <= len(content) <= FILE_MAX_BYTES:
            raise PermanentSendError(f"a file of {len(content)} bytes is outside media/upload's limits")

        def form() -> aiohttp.FormData:  # a FormData can be sent once: a fresh one for the retry with a new token
            data = aiohttp.FormData()
            data.add_field("media", content, filename=filename, content_type=mime or "application/octet-stream")
            return data

        out = await self._authorized("media/upload", {"type": "file"}, form)
        return str(out["media_id"])

    async def _authorized(self, path: str, params: dict[str, str], data: Callable[[], Any]) -> dict[str, Any]:
        token = await self.token()
        try:
            return await self._request("POST", path, params={**params, "access_token": token}, data=data())
        except WecomError as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
        token = await self.token(stale=token)
        return await self._request("POST", path, params={**params, "access_token": token}, data=data())

    async def _request(self, method: str, path: str, params: dict[str, str], data: Any = None) -> dict[str, Any]:
        async with self._http().request(method, self.base + path, params=params, data=data) as r:
            if r.status != 200:
                raise ConnectionError(f"{path}: HTTP {r.status}")
            out: dict[str, Any] = await r.json(content_type=None)
        code = int(out.get("errcode", 0) or 0)
        if code == RATE_LIMITED:
            raise RetryLater(60)
        if code:
            raise WecomError(path, code, str(out.get("errmsg", "")))
        return out
