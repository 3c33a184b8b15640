"""Channel-neutral values the flows produce and consume (pure data, no I/O)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConversationKey:
    """Whose conversation an event belongs to: one person in one chat on one channel. Built once per
    event by the dispatcher; every conversation-state read and write goes through it."""

    channel: str
    chat: str
    user: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.chat}:{self.user}"


@dataclass(frozen=True)
class Button:
    """One button: the words shown and the short callback data sent back on a press."""

    text: str
    data: str


@dataclass(frozen=True)
class Document:
    """A file sent with a message (e.g. a person's data export): its name, type and text content."""

    filename: str
    content: str
    mime: str = "application/json"


@dataclass(frozen=True)
class Message:
    """Text plus optional rows of buttons; surfaces without buttons list them numbered. With `document`, a
    file sent with the text as its caption."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    phone_button: str = ""  # asks for a phone: the label of a "share my number" key where a channel has one
    document: Document | None = None

    def flat_buttons(self) -> list[Button]:
        """All buttons in reading order (the numbering a typed digit refers to)."""
        return [b for row in self.buttons for b in row]


def rows(buttons: list[Button], per_row: int = 2) -> tuple[tuple[Button, ...], ...]:
    """Lay buttons out in rows of `per_row`."""
    return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))


@dataclass(frozen=True)
class UserInput:
    """What a person did: typed text, pressed a button (data), or shared a contact/location."""

    text: str | None = None
    data: str | None = None
    contact_phone: str | None = None
    location: str | None = None


@dataclass
class Draft:
    """A help request being filled in by a resident (the intake form)."""

    category: str | None = None
    service: str | None = None
    station: str | None = None
    for_whom: str | None = None  # "self" | "family"
    when_kind: str | None = None  # "asap" | "today" | "at"
    when_at: str | None = None  # ISO local datetime of the start, when when_kind == "at"/"today"
    when_text: str | None = None  # how it is shown ("11月24日 08:30")
    address: str | None = None
    phone: str | None = None
    description: str | None = None
    urgent: bool = False
    extra: dict[str, str] = field(default_factory=dict)
