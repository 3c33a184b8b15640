"""The simulator channel: a local web page and JSON API that play private and group chats.

It is a real adapter behind the same Channel protocol as Telegram and WeCom; its "platform" (the
chat log the fake phones show) is kept in the database so it survives restarts like a real one.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.channels.base import Dispatch, PermanentSendError
from bot.clock import Clock
from flows.types import Message
from handlers.events import InboundEvent
from storage.db import Database
from storage.models import GroupBinding, Identity, Person, SimMessage, Team, TeamMember
from storage.repo import rowcount

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
NAME = "simulator"
MAX_TEXT = 4096
COOKIE = "wuwei_sim_token"


class BadRequest(web.HTTPBadRequest):
    """A 400 with a JSON body saying what is wrong."""

    def __init__(self, error: str, status: type[web.HTTPException] | None = None) -> None:
        super().__init__(text=json.dumps({"error": error}, ensure_ascii=False), content_type="application/json")


class SimulatorChannel:
    """Chats on a local page; every POST returns after the bot handled it and delivered its messages."""

    name = NAME

    def __init__(self, db: Database, clock: Clock, settle: Callable[[list[int]], Awaitable[None]],
                 advance: Callable[[timedelta], Awaitable[None]], timezone: str = "Asia/Shanghai",
                 team_order: list[str] | None = None, token: str | None = None) -> None:
        self.db, self.clock, self.settle, self.advance = db, clock, settle, advance
        self.token = token  # when set, every page and API call must carry it
        self.tz = ZoneInfo(timezone)
        self.team_order = team_order or []  # groups are listed as teams are in config
        self._dispatch: Dispatch | None = None

    # ---- Channel protocol --------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        """The page, its static files and the JSON API."""
        guard = self._guarded
        return [
            web.get("/", guard(self._index)),
            web.get("/sim/static/{name}", guard(self._static)),
            web.get("/sim/api/directory", guard(self._directory)),
            web.get("/sim/api/chats/{chat_id}/messages", guard(self._messages)),
            web.get("/sim/api/chats/{chat_id}/documents/{message_id}", guard(self._document)),
            web.post("/sim/api/send", guard(self._send)),
            web.post("/sim/api/press", guard(self._press)),
            web.get("/sim/api/clock", guard(self._clock)),
            web.post("/sim/api/clock", guard(self._clock)),
        ]

    def _guarded(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Every simulator route: with simulator.token set, a request needs it (`?token=`, after which the page
        keeps it in a cookie, the cookie, or `Authorization: Bearer …`; anything else is a 401 that says how to
        get in). A database that cannot be reached is a 503: nothing was kept, send the same call again."""
        expected = self.token.encode() if self.token else None

        async def checked(request: web.Request) -> web.StreamResponse:
            if expected is not None:
                auth = request.headers.get("Authorization", "")
                given = (request.query.get("token") or request.cookies.get(COOKIE)
                         or (auth[7:] if auth.startswith("Bearer ") else ""))
                if not hmac.compare_digest(given.encode(), expected):
                    raise web.HTTPUnauthorized(
                        text=json.dumps({"error": "the simulator needs its token: open /?token=… "
                                                  "(simulator.token in config.yaml)"}, ensure_ascii=False),
                        content_type="application/json")
            try:
                response = await handler(request)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("simulator: the database is unreachable (%s); answered 503", type(exc).__name__)
                raise web.HTTPServiceUnavailable(text=json.dumps({"error": "not handled, please send it again"}),
                                                 content_type="application/json") from None
            if expected is not None and request.query.get("token"):
                response.set_cookie(COOKIE, self.token or "", httponly=True, samesite="Strict")
            return response

        return checked

    async def _static(self, request: web.Request) -> web.StreamResponse:
        path = STATIC / request.match_info["name"]
        if path.parent != STATIC or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def start(self, dispatch: Dispatch) -> None:
        """Remember where inbound events go."""
        self._dispatch = dispatch

    async def stop(self) -> None:
        """Nothing to release."""

    async def send(self, chat_id: str, msg: Message, key: str | None = None) -> str:
        """Append a bot message to a chat, once per delivery key (a worker that died after this and before the
        outbox marked the row sent makes another worker send it again: the chat shows it once)."""
        if len(msg.text) > MAX_TEXT:
            raise PermanentSendError("text longer than the simulator's 4096 characters")
        try:
            async with self.db.transaction() as s:
                if key is not None:
                    seen = await s.execute(select(SimMessage.id).where(SimMessage.delivery_key == key))
                    if (first := seen.scalar_one_or_none()) is not None:
                        return str(first)
                doc = msg.document
                row = SimMessage(chat_id=chat_id, sender="bot", text=msg.text, buttons=_buttons(msg), edited=False,
                                 created_at=self.clock.now(), delivery_key=key,
                                 document={"filename": doc.filename, "mime": doc.mime, "content": doc.content}
                                 if doc is not None else None)
                s.add(row)
                await s.flush()
                return str(row.id)
        except IntegrityError:  # the same key at the same moment from another worker: theirs stands
            async with self.db.read() as s:
                return str((await s.execute(select(SimMessage.id).where(SimMessage.delivery_key == key)))
                           .scalar_one())

    async def edit(self, chat_id: str, message_id: str, msg: Message) -> None:
        """Replace a bot message in place."""
        async with self.db.transaction() as s:
            changed = await rowcount(s, update(SimMessage).where(SimMessage.id == int(message_id),
                                                                 SimMessage.chat_id == chat_id)
                                     .values(text=msg.text, buttons=_buttons(msg), edited=True))
            if changed != 1:
                raise PermanentSendError("no such message to edit")

    # ---- HTTP ----------------------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _directory(self, request: web.Request) -> web.Response:
        async with self.db.read() as s:
            people = list((await s.execute(
                select(Person).join(Identity, Identity.person_id == Person.id)
                .where(Identity.channel == NAME).order_by(Person.is_resident, Person.id))).scalars())
            members = (await s.execute(select(TeamMember.person_id, TeamMember.team_id))).all()
            groups = (await s.execute(select(GroupBinding.chat_id, Team.id, Team.name)
                                      .join(Team, Team.id == GroupBinding.team_id)
                                      .where(GroupBinding.channel == NAME))).all()
        teams: dict[str, list[str]] = {}
        for pid, tid in members:
            teams.setdefault(pid, []).append(tid)
        out = [{"user_id": p.id, "name": p.name, "teams": sorted(teams.get(p.id, [])),
                "roles": [r for r, on in (("coordinator", p.is_coordinator), ("volunteer", p.is_volunteer),
                                          ("resident", p.is_resident)) if on]} for p in people]
        order = {tid: i for i, tid in enumerate(self.team_order)}  # as in config: stations first
        groups = sorted(groups, key=lambda g: (order.get(g[1], len(order)), g[1]))
        return web.json_response({"people": out, "groups": [
            {"chat_id": c, "team_id": tid, "team_name": tname} for c, tid, tname in groups]})

    async def _messages(self, request: web.Request) -> web.Response:
        chat_id = request.match_info["chat_id"]
        async with self.db.read() as s:
            rows = list((await s.execute(select(SimMessage).where(SimMessage.chat_id == chat_id)
                                         .order_by(SimMessage.id))).scalars())
        return web.json_response([{"message_id": str(r.id), "text": r.text, "buttons": r.buttons,
                                   "edited": r.edited, "sender": r.sender,
                                   "document": {"filename": r.document["filename"], "url":
                                                f"/sim/api/chats/{chat_id}/documents/{r.id}"} if r.document else None}
                                  for r in rows])

    async def _document(self, request: web.Request) -> web.Response:
        """A file the bot sent in a chat (e.g. a data export), as a download."""
        chat_id, message_id = request.match_info["chat_id"], request.match_info["message_id"]
        if not message_id.isdigit():
            raise web.HTTPNotFound()
        async with self.db.read() as s:
            row = await s.get(SimMessage, int(message_id))
        if row is None or row.chat_id != chat_id or not row.document:
            raise web.HTTPNotFound()
        doc = row.document
        return web.Response(text=doc["content"], content_type=doc.get("mime") or "application/octet-stream",
                            headers={"Content-Disposition": f'attachment; filename="{doc["filename"]}"'})

    async def _body(self, request: web.Request, fields: tuple[str, ...]) -> dict[str, str]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("body must be JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        for f in fields:
            if not isinstance(body.get(f), str) or not body[f].strip():
                raise BadRequest(f"'{f}' must be a non-empty string")
            if len(body[f]) > MAX_TEXT:
                raise BadRequest(f"'{f}' is longer than {MAX_TEXT} characters")
        for f in ("user_name", "event_id"):
            if f in body and not isinstance(body[f], str):
                raise BadRequest(f"'{f}' must be a string")
        return body

    async def _chat_type(self, chat_id: str, user_id: str) -> str:
        if chat_id == user_id:
            return "private"
        async with self.db.read() as s:
            bound = await s.get(GroupBinding, (NAME, chat_id))
        if bound is None:
            raise BadRequest(f"unknown chat '{chat_id}': a private chat's id is the user's id, groups come from "
                             "config (GET /sim/api/directory)")
        return "group"

    async def _send(self, request: web.Request) -> web.Response:
        body = await self._body(request, ("chat_id", "user_id", "text"))
        chat_type = await self._chat_type(body["chat_id"], body["user_id"])
        event_id = body.get("event_id") or uuid.uuid4().hex
        # the person's message is logged once per event id: a call sent again (the worker died, a 503) with
        # the same event_id does not show it twice
        key = "in:" + (event_id if len(event_id) <= 60 else hashlib.sha256(event_id.encode()).hexdigest()[:60])
        logged: int | None = None  # this call's own row, taken off again if the event is not handled
        try:
            async with self.db.transaction() as s:
                seen = await s.execute(select(SimMessage.id).where(SimMessage.delivery_key == key))
                if seen.scalar_one_or_none() is None:
                    row = SimMessage(chat_id=body["chat_id"], sender=body["user_id"], text=body["text"],
                                     buttons=[], edited=False, created_at=self.clock.now(), delivery_key=key)
                    s.add(row)
                    await s.flush()
                    logged = row.id
        except IntegrityError:  # the same call at the same moment on another connection logged it: theirs stands
            logged = None
        ev = InboundEvent(channel=NAME, event_id=f"msg:{event_id}", chat_id=body["chat_id"],
                          user_id=body["user_id"], chat_type=chat_type,  # type: ignore[arg-type]
                          user_name=(body.get("user_name") or "")[:100], text=body["text"])
        try:
            handled = await self._handle(ev)
        except web.HTTPServiceUnavailable:
            if logged is not None:
                await self._unshow(logged)  # the retry shows it again
            raise
        return web.json_response({"ok": True, "duplicate": handled.duplicate})

    async def _unshow(self, row_id: int) -> None:
        """Take a person's message off the chat log (a duplicate, or one to be sent again)."""
        try:
            async with self.db.transaction() as s:
                if (row := await s.get(SimMessage, row_id)) is not None:
                    await s.delete(row)
        except Exception:
            log.warning("simulator: a message could not be taken off the chat log")

    async def _press(self, request: web.Request) -> web.Response:
        body = await self._body(request, ("chat_id", "user_id", "message_id", "data"))
        chat_type = await self._chat_type(body["chat_id"], body["user_id"])
        if not body["message_id"].isdigit():
            raise BadRequest("'message_id' must be a message id from this chat")
        async with self.db.read() as s:
            msg = await s.get(SimMessage, int(body["message_id"]))
        if msg is None or msg.chat_id != body["chat_id"] or msg.sender != "bot":
            raise BadRequest("no such bot message in this chat")
        if len(body["data"].encode()) > 64:
            raise BadRequest("'data' is longer than 64 bytes")
        # a phone may still show a button the bot has since edited away: such stale presses are
        # delivered, as real platforms do, and the bot answers them
        ev = InboundEvent(channel=NAME, event_id=f"press:{body.get('event_id') or uuid.uuid4().hex}",
                          chat_id=body["chat_id"], user_id=body["user_id"], chat_type=chat_type,  # type: ignore[arg-type]
                          user_name=(body.get("user_name") or "")[:100], kind="press", data=body["data"],
                          message_id=body["message_id"])
        handled = await self._handle(ev)
        return web.json_response({"answer": handled.answer, "duplicate": handled.duplicate})

    async def _handle(self, ev: InboundEvent) -> Any:
        assert self._dispatch is not None, "channel not started"
        handled = await self._dispatch(ev)
        if handled.failed:  # nothing was kept: the caller sends it again (with the same event_id)
            raise web.HTTPServiceUnavailable(text=json.dumps({"error": "not handled, please send it again"}),
                                             content_type="application/json")
        await self.settle(handled.outbox_ids)
        return handled

    async def _clock(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                body = await request.json()
                minutes = float(body["advance_minutes"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise BadRequest("body must be {\"advance_minutes\": N}") from None
            if not 0 <= minutes <= 60 * 24 * 30:
                raise BadRequest("'advance_minutes' must be between 0 and 43200")
            await self.advance(timedelta(minutes=minutes))
        now = self.clock.now()
        local = now.replace(tzinfo=UTC).astimezone(self.tz).replace(tzinfo=None)
        return web.json_response({"now": now.isoformat(timespec="seconds") + "Z",
                                  "local": local.isoformat(timespec="seconds")})


def _buttons(msg: Message) -> list[list[dict[str, str]]]:
    return [[{"text": b.text, "data": b.data} for b in row] for row in msg.buttons]
