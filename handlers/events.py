"""The channel-neutral inbound event every adapter produces, and what handling returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


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


@dataclass
class Handled:
    """What the dispatcher tells the adapter: the toast for a press, and whether it was a repeat."""

    answer: str | None = None
    duplicate: bool = False
    outbox_ids: list[int] = field(default_factory=list)
