"""The channel-neutral inbound event every adapter produces, and what handling returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from flows.types import ConversationKey
from storage.retention import Transcript


@dataclass(frozen=True)
class InboundEvent:
    """Something a person (or a timer) did, normalised by a channel adapter."""

    channel: str
    event_id: str  # the platform's id for dedupe (message id, update id, callback id …)
    chat_id: str
    user_id: str
    chat_type: Literal["private", "group"] = "private"
    user_name: str = ""
    kind: Literal["message", "press", "media", "timer"] = "message"
    text: str | None = None
    data: str | None = None  # callback data of a pressed button
    message_id: str | None = None  # the message whose button was pressed
    contact_phone: str | None = None
    location: str | None = None
    locale: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> ConversationKey:
        """The conversation this event belongs to (the person in this chat on this channel)."""
        return ConversationKey(self.channel, self.chat_id, self.user_id)


@dataclass(frozen=True)
class ChannelTraits:
    """What the core may know of a channel, without naming it (bot/channels/registry.py says which has which)."""

    fanout: bool = False  # one send to "a|b|c" reaches all of them as one card that one edit updates for all
    replaces_private: str | None = None  # a team card in a group here stands for private cards on that channel
    keep_private_for: frozenset[str] = frozenset()  # … except for these teams, who get both
    card_failed_key: str = "coord.group_card_failed"  # how coordinators are told a group card failed here
    no_files: bool = False  # cannot send a Message's document (a data export is sent as text instead)
    transcript: Transcript | None = None  # where copies of its chats are kept (purged and erased with the rest)


NO_TRAITS = ChannelTraits()


@dataclass
class Handled:
    """What the dispatcher tells the adapter: the toast for a press, and whether it was a repeat."""

    answer: str | None = None
    duplicate: bool = False
    outbox_ids: list[int] = field(default_factory=list)
    failed: bool = False  # nothing was kept: do not acknowledge, let the platform deliver it again
    gave_up: bool = False  # it failed too often: recorded as handled, the person got an apology
