"""A local fake WeCom server (127.0.0.1, port 0) that enforces the platform's rules and pushes encrypted
callbacks to the bot with wechatpy's crypto, on a clock the test controls.

Rules enforced (PROTOCOLS.md): access tokens expire (42001) or are unknown (40014); kf sends only within
48 h of the resident's last message (95002) and at most 5 per resident message (95001), only while the
session is new or with the bot; texts ≤ 2048 bytes, msgmenu limits; per member from the app 30/min and
1000/h — the excess is DROPPED SILENTLY and recorded in `dropped`; response codes are single-use and
valid 72 h; task ids are unique; media/upload takes a multipart form with one "media" part (a file name,
type=file, more than 5 bytes and at most 20 MB) and its media_id lasts 3 days; file messages (app and kf)
carry such a media_id, and what they delivered can be read back (`kf_files`, `app_files`). Every refused call
is recorded in `violations`.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import xmltodict
from aiohttp import web
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.clock import Clock

EPOCH = datetime(1970, 1, 1)
TASK_ID = re.compile(r"^[0-9a-zA-Z_\-@]{1,128}$")


def epoch(at: datetime) -> int:
    """Seconds since 1970 of a naive UTC time."""
    return int((at - EPOCH).total_seconds())


@dataclass
class KfUser:
    """A WeChat user's kf session as WeCom sees it."""

    state: int = 0
    servicer: str | None = None
    last_in: datetime | None = None
    sent: int = 0


@dataclass
class Media:
    """An uploaded temporary file (media/upload)."""

    filename: str
    content: bytes
    content_type: str
    kind: str
    at: datetime


@dataclass
class Card:
    """One template card (task_id) and its recipients."""

    users: list[str]
    card: dict[str, Any]
    updates: list[dict[str, Any]] = field(default_factory=list)


class FakeWecom:
    """The fake API and the callback pusher."""

    def __init__(self, clock: Clock, corp_id: str = "wwfakecorp000001", agent_id: int = 1000002,
                 open_kfid: str = "wkFAKEKF000001", app_secret: str = "app-secret",
                 app_token: str = "apptoken", app_aes: str = "A" * 43, kf_token: str = "kftoken",
                 kf_aes: str = "B" * 43) -> None:
        self.clock, self.corp_id, self.agent_id, self.open_kfid = clock, corp_id, agent_id, open_kfid
        self.app_secret, self.app_token, self.app_aes, self.kf_token, self.kf_aes = (
            app_secret, app_token, app_aes, kf_token, kf_aes)
        self.app_crypto = WeChatCrypto(app_token, app_aes, corp_id)
        self.kf_crypto = WeChatCrypto(kf_token, kf_aes, corp_id)
        self.tokens: dict[str, datetime] = {}
        self.token_calls = 0
        self.token_lifetime = 7200.0  # seconds; 0 = WeCom refuses every new token at once (42001)
        self.violations: list[tuple[str, int, str]] = []
        self.dropped: list[tuple[str, dict[str, Any]]] = []
        self.app_inbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.cards: dict[str, Card] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.member_sends: dict[str, list[datetime]] = defaultdict(list)
        self.kf_users: dict[str, KfUser] = defaultdict(KfUser)
        self.kf_out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.kf_log: list[dict[str, Any]] = []
        self.sync_tokens: set[str] = set()
        self.welcome_codes: dict[str, tuple[str, datetime]] = {}
        self.trans_log: list[dict[str, Any]] = []
        self.fail_next: dict[str, int] = {}  # path -> errcode to answer once (e.g. 45009)
        self.cut_next: set[str] = set()  # paths whose next call loses its connection before WeCom takes it
        self.media: dict[str, Media] = {}
        self.uploads = 0  # media/upload calls that were accepted
        self.empty_page_once = False  # kf/sync_msg quirk: has_more=1 with an empty list
        self.gate: asyncio.Event | None = None  # when set up, API calls wait until it is set (a slow WeCom)
        self._seq = itertools.count(1)
        self.bot_url = ""
        self.last_push: tuple[str, bytes, dict[str, str]] = ("", b"", {})  # to replay a callback elsewhere
        self.callback_path = "/wecom/callback"
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._http: aiohttp.ClientSession | None = None

    # ---- server ------------------------------------------------------------------------------------
    async def start(self) -> FakeWecom:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application(client_max_size=25 * 1024 * 1024)  # WeCom's own 20 MB limit is checked below
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/media/upload", self._upload)
        for path, handler in self._routes().items():
            app.router.add_post(f"/cgi-bin/{path}", self._wrap(path, handler))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self._http = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        """Stop the server."""
        if self._http:
            await self._http.close()
        if self._runner:
            await self._runner.cleanup()

    def _routes(self) -> dict[str, Any]:
        from tests.fakes import wecom_api as api

        return {"message/send": api.message_send, "message/update_template_card": api.update_card,
                "kf/sync_msg": api.sync_msg, "kf/send_msg": api.kf_send, "kf/send_msg_on_event": api.kf_welcome,
                "kf/service_state/get": api.state_get, "kf/service_state/trans": api.state_trans,
                "kf/add_contact_way": api.add_contact_way}

    async def _guard(self, path: str, request: web.Request) -> web.Response | None:
        """What every API call goes through first: the gate, the token, an injected failure."""
        if self.gate is not None:
            await self.gate.wait()
        token = request.query.get("access_token", "")
        if token not in self.tokens:
            return self.error(path, 40014, "invalid access_token")
        if self.clock.now() >= self.tokens[token]:
            return self.error(path, 42001, "access_token expired")
        if path in self.fail_next:
            return self.error(path, self.fail_next.pop(path), "injected")
        if path in self.cut_next:  # the caller sees the connection drop and cannot know what happened
            self.cut_next.discard(path)
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never written: the connection is gone
        return None

    async def _upload(self, request: web.Request) -> web.Response:
        from tests.fakes import wecom_api as api

        refused = await self._guard("media/upload", request)
        return refused or web.json_response(await api.media_upload(self, request))

    def _wrap(self, path: str, handler: Any) -> Any:
        async def route(request: web.Request) -> web.Response:
            refused = await self._guard(path, request)
            if refused is not None:
                return refused
            try:  # wechatpy sends JSON without a Content-Type: read the raw body
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                return self.error(path, 47001, "bad json")
            out = handler(self, body)
            return web.json_response(out if isinstance(out, dict) else {"errcode": 0, "errmsg": "ok"})
        return route

    def error(self, path: str, code: int, msg: str) -> web.Response:
        """Record a refused call and answer with its errcode."""
        self.violations.append((path, code, msg))
        return web.json_response({"errcode": code, "errmsg": msg})

    def refuse(self, path: str, code: int, msg: str) -> dict[str, Any]:
        """Like error(), for handlers that return dicts."""
        self.violations.append((path, code, msg))
        return {"errcode": code, "errmsg": msg}

    async def _gettoken(self, request: web.Request) -> web.Response:
        self.token_calls += 1
        if request.query.get("corpid") != self.corp_id or request.query.get("corpsecret") != self.app_secret:
            return self.error("gettoken", 40001, "invalid credential")
        now = self.clock.now()
        live = [t for t, exp in self.tokens.items() if exp > now]
        token = live[0] if live else f"tok{next(self._seq)}{uuid.uuid4().hex[:8]}"
        self.tokens.setdefault(token, now + timedelta(seconds=self.token_lifetime))
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})

    def expire_tokens(self) -> None:
        """WeCom invalidated every token early."""
        for token in self.tokens:
            self.tokens[token] = self.clock.now()

    def next_id(self, prefix: str) -> str:
        """A fresh id."""
        return f"{prefix}{next(self._seq)}{uuid.uuid4().hex[:6]}"

    # ---- callbacks to the bot ---------------------------------------------------------------------------
    def seal(self, kind: str, fields: dict[str, Any] | str, crypto: WeChatCrypto | None = None,
             ) -> tuple[bytes, dict[str, str]]:
        """(body, query) of a callback as WeCom sends it: XML encrypted and signed."""
        crypto = crypto or (self.app_crypto if kind == "app" else self.kf_crypto)
        xml = fields if isinstance(fields, str) else xmltodict.unparse({"xml": fields}, full_document=False)
        nonce, ts = uuid.uuid4().hex[:10], str(epoch(self.clock.now()))
        sealed = xmltodict.parse(crypto.encrypt_message(xml, nonce, ts))["xml"]
        body = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName><Encrypt><![CDATA[{sealed['Encrypt']}]]>"
                f"</Encrypt><AgentID><![CDATA[{self.agent_id}]]></AgentID></xml>")
        return body.encode(), {"msg_signature": sealed["MsgSignature"], "timestamp": ts, "nonce": nonce}

    async def push(self, kind: str, fields: dict[str, Any], times: int = 1) -> list[int]:
        """Encrypt a message as WeCom does and POST it to the bot (`times` = WeCom's retries)."""
        body, params = self.seal(kind, fields)
        self.last_push = (kind, body, params)
        return [await self.post_raw(kind, body, params) for _ in range(times)]

    async def post_raw(self, kind: str, body: bytes, params: dict[str, str]) -> int:
        """POST anything to one of the bot's callback URLs; the HTTP status."""
        assert self._http is not None
        async with self._http.post(f"{self.bot_url}{self.callback_path}/{kind}", data=body, params=params) as r:
            await r.read()
            return r.status

    def _kf_event(self, user: str, event: dict[str, Any]) -> None:
        self.kf_log.append({"msgid": self.next_id("ev"), "open_kfid": self.open_kfid, "external_userid": user,
                            "send_time": epoch(self.clock.now()), "origin": 4, "msgtype": "event",
                            "event": {"open_kfid": self.open_kfid, "external_userid": user, **event}})

    async def notify_kf(self, times: int = 1, via: str = "kf") -> list[int]:
        """Tell the bot there is something to sync (kf_msg_or_event). via="app": the kf account is managed
        by the self-built app (微信客服 → 可调用接口的应用), so WeCom posts to the app's callback URL."""
        token = self.next_id("synctok")
        self.sync_tokens.add(token)
        return await self.push(via, {"ToUserName": self.corp_id, "CreateTime": epoch(self.clock.now()),
                                      "MsgType": "event", "Event": "kf_msg_or_event", "Token": token,
                                      "OpenKfId": self.open_kfid}, times)

    async def resident_says(self, user: str, text: str, menu_id: str | None = None, times: int = 1,
                            via: str = "kf") -> list[int]:
        """A WeChat user writes (or clicks a menu item) in the kf chat."""
        kf = self.kf_users[user]
        kf.last_in, kf.sent = self.clock.now(), 0
        if kf.state == 4:
            kf.state = 0
        body: dict[str, Any] = {"content": text}
        if menu_id:
            body["menu_id"] = menu_id
        self.kf_log.append({"msgid": self.next_id("msg"), "open_kfid": self.open_kfid, "external_userid": user,
                            "send_time": epoch(self.clock.now()), "origin": 3, "msgtype": "text", "text": body})
        return await self.notify_kf(times, via)

    async def resident_clicks(self, user: str, label: str, times: int = 1) -> list[int]:
        """Click the newest msgmenu item with this label."""
        for m in reversed(self.kf_out[user]):
            for item in m.get("items", []):
                if item["content"] == label:
                    return await self.resident_says(user, label, item["id"], times)
        raise AssertionError(f"no menu item {label!r} for {user}: {self.kf_texts(user)}")

    async def enter_session(self, user: str, scene_param: str = "", times: int = 1) -> list[int]:
        """The user opens the kf chat from a link (welcome code valid 20 s)."""
        code = self.next_id("wc")
        self.welcome_codes[code] = (user, self.clock.now() + timedelta(seconds=20))
        self._kf_event(user, {"event_type": "enter_session", "scene": "s", "scene_param": scene_param,
                              "welcome_code": code})
        return await self.notify_kf(times)

    async def kf_event(self, user: str, event: dict[str, Any], times: int = 1) -> list[int]:
        """Any other kf event (msg_send_fail, session_status_change: 3 = the servicer ended it)."""
        if event.get("event_type") == "session_status_change" and event.get("change_type") == 3:
            self.kf_users[user].state, self.kf_users[user].servicer = 4, None
        self._kf_event(user, event)
        return await self.notify_kf(times)

    async def member_says(self, userid: str, text: str, times: int = 1) -> list[int]:
        """A corp member writes to the app."""
        return await self.push("app", {"ToUserName": self.corp_id, "FromUserName": userid,
                                       "CreateTime": epoch(self.clock.now()), "MsgType": "text", "Content": text,
                                       "MsgId": self.next_id("7"), "AgentID": self.agent_id}, times)

    async def click(self, userid: str, task_id: str, key: str, times: int = 1) -> list[int]:
        """A member clicks a card button (a fresh single-use response code comes with it)."""
        code = self.next_id("rc")
        self.codes[code] = {"task_id": task_id, "at": self.clock.now(), "used": False}
        return await self.push("app", {"ToUserName": self.corp_id, "FromUserName": userid,
                                       "CreateTime": epoch(self.clock.now()), "MsgType": "event",
                                       "Event": "template_card_event", "EventKey": key, "TaskId": task_id,
                                       "CardType": "button_interaction", "ResponseCode": code,
                                       "AgentID": self.agent_id}, times)

    def find_button(self, userid: str, label: str, contains: str = "") -> tuple[str, str]:
        """(task_id, key) of the newest card copy of this member showing a button with this label."""
        for m in reversed(self.app_inbox[userid]):
            if m["kind"] != "card":
                continue
            card = self.cards[m["task_id"]].card
            if contains and contains not in card_text(card):
                continue
            for b in card.get("button_list", []):
                if b["text"] == label:
                    return m["task_id"], b["key"]
        raise AssertionError(f"no button {label!r} for {userid}: {self.texts(userid)}")

    async def press(self, userid: str, label: str, contains: str = "", times: int = 1) -> list[int]:
        """Click the newest button with this label."""
        return await self.click(userid, *self.find_button(userid, label, contains), times=times)

    # ---- what people see -----------------------------------------------------------------------------
    def texts(self, userid: str) -> list[str]:
        """What a member's app chat shows (cards as they are now; a file as "[文件] <name>")."""
        return [card_text(self.cards[m["task_id"]].card) if m["kind"] == "card" else m["text"]
                for m in self.app_inbox[userid]]

    def kf_texts(self, user: str) -> list[str]:
        """What a resident's kf chat shows."""
        return [m["text"] for m in self.kf_out[user]]

    def _file(self, media_id: str) -> tuple[str, str]:
        media = self.media[media_id]
        return media.filename, media.content.decode()

    def kf_files(self, user: str) -> list[tuple[str, str]]:
        """(file name, text content) of every file a resident received in kf, oldest first."""
        return [self._file(m["file"]) for m in self.kf_out[user] if "file" in m]

    def app_files(self, userid: str) -> list[tuple[str, str]]:
        """(file name, text content) of every file a member received from the app, oldest first."""
        return [self._file(m["media_id"]) for m in self.app_inbox[userid] if m["kind"] == "file"]


def card_text(card: dict[str, Any]) -> str:
    """A card's visible text."""
    parts = [card.get("main_title", {}).get("title", ""), card.get("sub_title_text", "")]
    parts += [b["text"] for b in card.get("button_list", [])]
    return "\n".join(p for p in parts if p)
