"""The per-event context handlers work with: the session, config, clock and ways to say things."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from flows.catalog import Catalog
from flows.i18n import norm_locale
from flows.types import ConversationKey, Message
from handlers.events import NO_TRAITS, ChannelTraits
from storage import repo
from storage.models import ConversationState, HelpRequest, Person

if TYPE_CHECKING:
    from bot.config import Config


MessageBuilder = Callable[[str], Message]  # locale -> message, so each person gets their language


def message_payload(msg: Message) -> dict[str, object]:
    """An outbox payload for a message."""
    payload: dict[str, object] = {"text": msg.text, "buttons": [[{"text": b.text, "data": b.data} for b in row]
                                                                for row in msg.buttons]}
    if msg.phone_button:
        payload["phone_button"] = msg.phone_button
    if msg.document is not None:
        payload["document"] = {"filename": msg.document.filename, "mime": msg.document.mime,
                               "content": msg.document.content}
    return payload


@dataclass
class Ctx:
    """Everything one event's handling may touch; writes go to one transaction."""

    s: AsyncSession
    cfg: Config
    catalog: Catalog
    now: datetime  # naive UTC
    traits: Mapping[str, ChannelTraits] = field(default_factory=dict)  # what the core may know of each channel
    key: ConversationKey | None = None  # the event's conversation (None for timers)
    state: ConversationState | None = None  # its state, read once after the conversation lock
    outbox_ids: list[int] = field(default_factory=list)  # filled by flush_outbox, once the rows are written
    rows: list[repo.NewRow] = field(default_factory=list)  # this event's messages, written together at the end

    async def set_state(self, flow: str, data: dict[str, object]) -> None:
        """Replace the state of this event's conversation (known since the event began: no second read)."""
        assert self.key is not None, "a timer has no conversation"
        if self.state is None:
            self.state = await repo.add_state(self.s, self.key, flow, data, self.now)
        else:
            self.state.flow, self.state.data, self.state.updated_at = flow, data, self.now

    async def clear_state(self) -> None:
        """Forget the state of this event's conversation."""
        assert self.key is not None, "a timer has no conversation"
        if self.state is not None:
            await self.s.delete(self.state)
            await self.s.flush()  # a new state for the same key may follow in this event
        else:
            await repo.clear_state(self.s, self.key)
        self.state = None

    @property
    def tz(self) -> ZoneInfo:
        """The configured local time zone."""
        return ZoneInfo(self.cfg.timezone)

    def local(self, utc: datetime | None = None) -> datetime:
        """A naive UTC time (default: now) as naive local time."""
        return (utc or self.now).replace(tzinfo=ZoneInfo("UTC")).astimezone(self.tz).replace(tzinfo=None)

    def to_utc(self, local: datetime) -> datetime:
        """A naive local time as naive UTC."""
        return local.replace(tzinfo=self.tz).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)

    def locale_of(self, person: Person | None) -> str:
        """The language to talk to a person in."""
        return norm_locale(person.locale if person and person.locale else self.cfg.locale)

    async def say(self, channel: str, chat_id: str, msg: Message) -> None:
        """Queue a message to a chat."""
        self.rows.append(repo.NewRow(channel, chat_id, "message", message_payload(msg)))

    async def say_to(self, person: Person, build: MessageBuilder) -> int:
        """Queue a private message to every account of a person; returns how many accounts."""
        idents = await repo.identities_of(self.s, [person.id])
        for ident in idents:
            await self.say(ident.channel, ident.chat_id or ident.external_id, build(self.locale_of(person)))
        return len(idents)

    async def say_to_resident(self, req: HelpRequest, msg: Message) -> None:
        """Queue a message to the resident of a request, in the chat they asked from."""
        await self.say(req.channel, req.chat_id, msg)

    async def post(self, channel: str, chat_id: str, req_id: int, ledger_kind: str) -> None:
        """Queue a request-bound message (card, nudge, detail) rendered from the request at delivery."""
        self.rows.append(repo.NewRow(channel, chat_id, "card", {}, req_id, ledger_kind))

    async def post_to(self, person: Person, req_id: int, ledger_kind: str) -> int:
        """Queue a request-bound message to every account of a person."""
        idents = await repo.identities_of(self.s, [person.id])
        for ident in idents:
            await self.post(ident.channel, ident.chat_id or ident.external_id, req_id, ledger_kind)
        return len(idents)

    async def post_to_all(self, people: list[Person], req_id: int, ledger_kind: str,
                          skip_channels: frozenset[str] = frozenset()) -> None:
        """Queue a request-bound message to these people: one copy per account, except that on a
        fan-out channel (one send reaches many members, one card update changes every copy) they
        share one post addressed to all of them ("a|b|c")."""
        idents = [i for i in await repo.identities_of(self.s, [p.id for p in people])
                  if i.channel not in skip_channels]
        fanout: dict[str, list[str]] = {}
        for ident in idents:
            chat = ident.chat_id or ident.external_id
            if self.traits.get(ident.channel, NO_TRAITS).fanout:
                fanout.setdefault(ident.channel, []).append(chat)
            else:
                await self.post(ident.channel, chat, req_id, ledger_kind)
        for channel, chats in fanout.items():
            await self.post(channel, "|".join(sorted(set(chats))), req_id, ledger_kind)

    async def refresh(self, req_id: int) -> None:
        """Queue a re-render of every copy of a request's messages on every channel."""
        self.rows.append(repo.NewRow("*", f"request:{req_id}", "refresh", {}, req_id))

    async def flush_outbox(self, lease_for: float = 0.0) -> list[repo.NewRow]:
        """Write this event's messages in one statement (before the commit). With `lease_for` seconds, the
        rows of chats with nothing else waiting are written leased to this worker, which sends them from
        memory right after the commit; those rows are returned."""
        rows, self.rows = self.rows, []
        if not rows:
            return []
        leased = await repo.enqueue_many(self.s, self.now, rows, lease_for)
        self.outbox_ids += [r.id for r in rows]
        return leased
