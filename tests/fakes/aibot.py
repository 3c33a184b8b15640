"""A local fake of WeCom's smart-robot (智能机器人) WebSocket endpoint, speaking the frames of the official
SDK (wecom-aibot-python-sdk): aibot_subscribe, ping, aibot_msg_callback / aibot_event_callback pushes,
aibot_send_msg, aibot_respond_update_msg, and disconnected_event when a second connection subscribes.

It serves wss:// on 127.0.0.1 with a self-signed certificate made at test time. The SDK trusts only
certifi's roots, so `trust_in_sdk()` adds this certificate to the SDK's SSL context: a TEST-ONLY hook,
never used by the bot itself. Everything is recorded; limits are enforced the way the platform does
(5-second single-use update window, ~30 messages/min per chat, chats that never talked to the robot).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import re
import ssl
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TASK_ID_RE = re.compile(r"^[0-9a-zA-Z_\-@]{1,128}$")
ERR_AUTH = 40014
ERR_BAD_REQUEST = 40058
ERR_RATE = 45009
ERR_NOT_INTERACTED = 93006  # [U] the chat never talked to the robot: a proactive push is refused
ERR_UPDATE_WINDOW = 93007  # [U] the click's req_id is unknown, used already, or older than 5 s
UPDATE_WINDOW = 5.0
PER_CHAT_PER_MINUTE = 30
_CERT: tuple[str, Path] | None = None


def _certificate() -> tuple[str, Path]:
    """A self-signed certificate for 127.0.0.1 (PEM text, and a file holding cert + key)."""
    global _CERT
    if _CERT is None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-aibot.test")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                            x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        path = Path(tempfile.mkdtemp(prefix="fake-aibot-")) / "cert.pem"
        path.write_text(pem + key_pem)
        _CERT = (pem, path)
    return _CERT


def trust_in_sdk() -> None:
    """TEST-ONLY: let the SDK's SSL context (certifi roots only) trust the fake's certificate."""
    with warnings.catch_warnings():  # the SDK imports a name websockets>=14 deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        import aibot.ws

    aibot.ws._SSL_CONTEXT.load_verify_locations(cadata=_certificate()[0])


@dataclass
class Conn:
    """One WebSocket connection from a client."""

    id: int
    ws: web.WebSocketResponse
    request: web.Request
    subscribed: bool = False
    closed: bool = False


@dataclass
class Click:
    """A template_card_event pushed to the robot: its req_id may update the card once within 5 s."""

    req_id: str
    task_id: str
    at: float
    used: bool = False


@dataclass
class Card:
    """A template card the robot pushed into a chat, as every member sees it now."""

    chatid: str
    card: dict[str, Any]
    per_user: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeAibot:
    """The fake endpoint; `url` is what the bot's channels.wecom.aibot.ws_url points at."""

    def __init__(self, bot_id: str = "aib-test-bot", secret: str = "aibot-test-secret") -> None:
        self.bot_id, self.secret = bot_id, secret
        self.conns: list[Conn] = []
        self.active: Conn | None = None
        self.frames: list[tuple[int, str, dict[str, Any]]] = []  # (connection id, "in"|"out", frame)
        self.sent: list[dict[str, Any]] = []  # accepted aibot_send_msg bodies
        self.updates: list[dict[str, Any]] = []  # accepted aibot_respond_update_msg bodies
        self.rejected: list[tuple[str, int, dict[str, Any]]] = []  # (cmd, errcode, body)
        self.cards: dict[str, Card] = {}
        self.clicks: dict[str, Click] = {}
        self.interacted: set[str] = set()
        self._rate: dict[str, list[float]] = {}
        self.answer_pings = True  # False: a dead connection that still looks open
        self.now: Callable[[], float] = time.monotonic  # the per-chat rate window's clock (tests may move it)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The wss:// URL of the fake."""
        return f"wss://127.0.0.1:{self.port}"

    async def start(self) -> FakeAibot:
        """Listen on a free port of 127.0.0.1 with TLS."""
        trust_in_sdk()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(_certificate()[1]))
        app = web.Application()
        app.router.add_get("/", self._ws)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Close every connection and the server."""
        for c in self.conns:
            if not c.closed:
                await c.ws.close()
        if self._runner:
            await self._runner.cleanup()

    # ---- what tests do ------------------------------------------------------------------------------
    def live(self) -> list[Conn]:
        """Subscribed connections still open."""
        return [c for c in self.conns if c.subscribed and not c.closed]

    async def wait_for(self, cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
        """Wait until `cond()` is truthy (a generous safety timeout, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while True:
            got = cond()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"fake aibot: timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def say(self, chatid: str, userid: str, text: str, chattype: str = "group",
                  msgid: str | None = None) -> str:
        """A member writes in a chat (in groups the robot only gets messages that @-mention it)."""
        self.interacted.add(chatid)
        body = {"msgid": msgid or uuid.uuid4().hex, "aibotid": self.bot_id, "chattype": chattype,
                "from": {"userid": userid}, "msgtype": "text", "text": {"content": text}}
        if chattype == "group":
            body["chatid"] = chatid
        return await self.push("aibot_msg_callback", body)

    async def click(self, chatid: str, userid: str, task_id: str, event_key: str, nested: bool = True,
                    msgid: str | None = None) -> str:
        """A member clicks a card button; returns the req_id the robot may update the card with."""
        ev = {"card_type": "button_interaction", "event_key": event_key, "task_id": task_id}
        event: dict[str, Any] = {"eventtype": "template_card_event"}
        event.update({"template_card_event": ev} if nested else ev)
        body = {"msgid": msgid or uuid.uuid4().hex, "create_time": int(time.time()), "aibotid": self.bot_id,
                "chatid": chatid, "chattype": "group", "from": {"userid": userid}, "msgtype": "event",
                "event": event}
        req_id = await self.push("aibot_event_callback", body)
        self.clicks[req_id] = Click(req_id, task_id, time.monotonic())
        return req_id

    async def kill(self, conn: Conn | None = None) -> None:
        """Drop a connection without a closing handshake (a network failure)."""
        conn = conn or self.active
        assert conn is not None, "no connection to kill"
        conn.closed = True
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    def cards_in(self, chatid: str) -> list[tuple[str, Card]]:
        """(task_id, card) of every template card pushed into a chat, oldest first."""
        return [(tid, c) for tid, c in self.cards.items() if c.chatid == chatid]

    def markdowns_in(self, chatid: str) -> list[str]:
        """Every markdown message pushed into a chat."""
        return [b["markdown"]["content"] for b in self.sent if b.get("chatid") == chatid
                and b.get("msgtype") == "markdown"]

    # ---- the endpoint ---------------------------------------------------------------------------------
    async def push(self, cmd: str, body: dict[str, Any]) -> str:
        """Push a callback frame to the subscribed connection; returns its req_id."""
        conn = await self.wait_for(lambda: self.active if self.active and not self.active.closed else None,
                                   what="a subscribed connection")
        req_id = f"{cmd}_{uuid.uuid4().hex}"
        await self._send(conn, {"cmd": cmd, "headers": {"req_id": req_id}, "body": body})
        return req_id

    async def _send(self, conn: Conn, frame: dict[str, Any]) -> None:
        self.frames.append((conn.id, "out", frame))
        await conn.ws.send_str(json.dumps(frame, ensure_ascii=False))

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(len(self.conns) + 1, ws, request)
        self.conns.append(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                self.frames.append((conn.id, "in", frame))
                await self._on_frame(conn, frame)
        finally:
            conn.closed = True
            if self.active is conn:
                self.active = None
        return ws

    async def _ack(self, conn: Conn, req_id: str, errcode: int = 0, errmsg: str = "ok") -> None:
        await self._send(conn, {"headers": {"req_id": req_id}, "errcode": errcode, "errmsg": errmsg})

    async def _on_frame(self, conn: Conn, frame: dict[str, Any]) -> None:
        cmd, req_id = frame.get("cmd"), str((frame.get("headers") or {}).get("req_id", ""))
        body = frame.get("body") or {}
        if cmd == "aibot_subscribe":
            await self._subscribe(conn, req_id, body)
        elif not conn.subscribed:
            await self._ack(conn, req_id, ERR_AUTH, "not subscribed")
        elif cmd == "ping":
            if self.answer_pings:
                await self._ack(conn, req_id)
        elif cmd == "aibot_send_msg":
            code = self._send_msg(body)
            await self._ack(conn, req_id, code, "ok" if code == 0 else "refused")
        elif cmd == "aibot_respond_update_msg":
            code = self._update(req_id, body)
            await self._ack(conn, req_id, code, "ok" if code == 0 else "refused")
        else:
            await self._ack(conn, req_id, ERR_BAD_REQUEST, f"unsupported cmd {cmd}")

    async def _subscribe(self, conn: Conn, req_id: str, body: dict[str, Any]) -> None:
        if body.get("bot_id") != self.bot_id or body.get("secret") != self.secret:
            await self._ack(conn, req_id, ERR_AUTH, "invalid bot_id or secret")
            await conn.ws.close(code=1008)
            return
        old, self.active = self.active, conn
        conn.subscribed = True
        await self._ack(conn, req_id)
        if old is not None and old is not conn and not old.closed:
            # one connection per robot: the newer one wins, the older is told and closed cleanly
            await self._send(old, {"cmd": "aibot_event_callback", "headers": {"req_id": uuid.uuid4().hex},
                                   "body": {"msgid": uuid.uuid4().hex, "create_time": int(time.time()),
                                            "aibotid": self.bot_id, "msgtype": "event",
                                            "event": {"eventtype": "disconnected_event"}}})
            old.closed = True
            await old.ws.close(code=1000)

    def _reject(self, cmd: str, code: int, body: dict[str, Any]) -> int:
        self.rejected.append((cmd, code, body))
        return code

    def _send_msg(self, body: dict[str, Any]) -> int:
        chatid = str(body.get("chatid") or "")
        if chatid not in self.interacted:
            return self._reject("aibot_send_msg", ERR_NOT_INTERACTED, body)
        now = self.now()
        window = [t for t in self._rate.get(chatid, []) if t > now - 60]
        if len(window) >= PER_CHAT_PER_MINUTE:
            return self._reject("aibot_send_msg", ERR_RATE, body)
        code = self._check_body(body)
        if code:
            return self._reject("aibot_send_msg", code, body)
        self._rate[chatid] = [*window, now]
        self.sent.append(body)
        if body["msgtype"] == "template_card":
            self.cards[body["template_card"]["task_id"]] = Card(chatid, body["template_card"])
        return 0

    def _check_body(self, body: dict[str, Any]) -> int:
        if body.get("msgtype") == "markdown":
            content = (body.get("markdown") or {}).get("content")
            return 0 if isinstance(content, str) and 0 < len(content.encode()) <= 4096 else ERR_BAD_REQUEST
        if body.get("msgtype") != "template_card":
            return ERR_BAD_REQUEST
        card = body.get("template_card") or {}
        if not self._card_ok(card) or card["task_id"] in self.cards:
            return ERR_BAD_REQUEST
        return 0

    @staticmethod
    def _card_ok(card: dict[str, Any]) -> bool:
        buttons = card.get("button_list") or []
        return (card.get("card_type") == "button_interaction" and bool(TASK_ID_RE.match(str(card.get("task_id"))))
                and bool((card.get("main_title") or {}).get("title")) and 1 <= len(buttons) <= 6
                and all(0 < len(b.get("text", "")) <= 10 and 0 < len(b.get("key", "").encode()) <= 1024
                        for b in buttons))

    def _update(self, req_id: str, body: dict[str, Any]) -> int:
        click = self.clicks.get(req_id)
        card = body.get("template_card") or {}
        if click is None or click.used or time.monotonic() - click.at > UPDATE_WINDOW:
            return self._reject("aibot_respond_update_msg", ERR_UPDATE_WINDOW, body)
        if body.get("response_type") != "update_template_card" or card.get("task_id") != click.task_id:
            return self._reject("aibot_respond_update_msg", ERR_BAD_REQUEST, body)
        if card.get("button_list") and not self._card_ok(card):
            return self._reject("aibot_respond_update_msg", ERR_BAD_REQUEST, body)
        click.used = True
        self.updates.append(body)
        target = self.cards.get(click.task_id)
        if target is not None:
            if body.get("userids"):
                for uid in body["userids"]:
                    target.per_user[uid] = card
            else:
                target.card, target.per_user = card, {}
        return 0


def wecom_userid(person_id: str) -> str:
    """The corp userid the tests give a configured person."""
    return f"wx-{person_id}"


def aibot_config(fake: FakeAibot, **aibot: Any) -> Callable[[dict[str, Any]], None]:
    """A demo_config mutation: the smart robot pointed at the fake, every staff member a corp userid."""

    def mutate(data: dict[str, Any]) -> None:
        data.setdefault("channels", {}).setdefault("wecom", {})["aibot"] = {
            "enabled": True, "bot_id": fake.bot_id, "secret": fake.secret, "ws_url": fake.url, **aibot}
        for person in data["people"]["volunteers"] + data["people"]["coordinators"]:
            person["wecom_userid"] = wecom_userid(person["id"])

    return mutate
