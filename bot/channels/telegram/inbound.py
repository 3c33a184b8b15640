"""Telegram updates -> channel-neutral InboundEvents (a table of what we take; the rest is dropped)."""
from __future__ import annotations

import logging
import re

from telegram import Message as TgMessage
from telegram import Update, User

from handlers.events import InboundEvent

log = logging.getLogger(__name__)
NAME = "telegram"
GROUP_TYPES = ("group", "supergroup")
MEMBER_STATES = ("member", "administrator", "creator", "restricted")
START_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a t.me ?start= deep link may carry


def event_id(update: Update) -> str:
    """The dedupe id of an update: Telegram's update_id is unique per bot and stable across redeliveries."""
    return f"u{update.update_id}"


def lane(update: Update) -> str:
    """The conversation an update belongs to (its chat and its sender): one lane's updates are handled in order."""
    chat = update.effective_chat.id if update.effective_chat else 0
    user = update.effective_user.id if update.effective_user else 0
    return f"{NAME}:{chat}:{user}"


def strip_command(text: str, username: str | None) -> str | None:
    """'/bind@wuwei_bot t-1' -> '/bind t-1'; None when the command is addressed to another bot."""
    if not text.startswith("/"):
        return text
    head, sep, rest = text.partition(" ")
    command, at, target = head.partition("@")
    if not at:
        return text
    if username and target.lower() != username.lower():
        return None
    return command + sep + rest


def _chat_type(chat_type: str) -> str | None:
    return "private" if chat_type == "private" else "group" if chat_type in GROUP_TYPES else None


def _who(user: User) -> dict[str, str | None]:
    return {"user_id": str(user.id), "user_name": user.full_name[:100], "locale": user.language_code}


def contact_phone(phone: str) -> str:
    """Telegram sends international numbers with or without '+': always give the '+'."""
    phone = phone.strip()
    return "+" + phone if phone.isdigit() else phone


def location_text(msg: TgMessage) -> str | None:
    """A shared location (or venue) as the address text: '📍31.23042,121.47370', a venue's address first."""
    loc = msg.venue.location if msg.venue else msg.location
    if loc is None:
        return None
    pin = f"📍{loc.latitude:.5f},{loc.longitude:.5f}"
    if msg.venue:
        return f"{msg.venue.title} {msg.venue.address} {pin}".strip()
    return pin


def _message(update: Update, msg: TgMessage, username: str | None) -> InboundEvent | None:
    chat_type = _chat_type(msg.chat.type)
    if chat_type is None or msg.from_user is None or msg.from_user.is_bot:
        return None
    base = {"channel": NAME, "event_id": event_id(update), "chat_id": str(msg.chat.id), "chat_type": chat_type,
            **_who(msg.from_user)}
    if msg.text is not None:
        text = strip_command(msg.text, username)
        if text is None:
            return None
        command, _, payload = text.partition(" ")
        if chat_type == "private" and command == "/start" and START_PAYLOAD.fullmatch(payload.strip()):
            # t.me/<bot>?start=s-xingfu (a station's QR code): the form starts with the station known
            return InboundEvent(**base, text="/start", extra={"station_hint": payload.strip()})  # type: ignore[arg-type]
        return InboundEvent(**base, text=text)  # type: ignore[arg-type]
    if chat_type == "group":
        return None  # photos and stickers in a group are not for the bot
    if msg.contact is not None:
        return InboundEvent(**base, contact_phone=contact_phone(msg.contact.phone_number))  # type: ignore[arg-type]
    if (where := location_text(msg)) is not None:
        return InboundEvent(**base, location=where)  # type: ignore[arg-type]
    return InboundEvent(**base, kind="media")  # type: ignore[arg-type]


def _press(update: Update) -> InboundEvent | None:
    query = update.callback_query
    assert query is not None
    chat_type = _chat_type(query.message.chat.type) if query.message else None
    if query.message is None or chat_type is None:
        return None  # a button on an inline message: not ours
    return InboundEvent(channel=NAME, event_id=event_id(update), chat_id=str(query.message.chat.id),
                        chat_type=chat_type, kind="press", data=query.data,  # type: ignore[arg-type]
                        message_id=str(query.message.message_id), **_who(query.from_user))  # type: ignore[arg-type]


def to_event(update: Update, username: str | None) -> InboundEvent | None:
    """The event an update means, or None (edited messages, channel posts, membership changes …)."""
    if update.callback_query is not None:
        return _press(update)
    if update.message is not None:
        return _message(update, update.message, username)
    if update.edited_message is not None:
        log.debug("edited message ignored: the bot answers what was sent, not later edits")
    return None


def migration(update: Update) -> tuple[str, str] | None:
    """(old, new) chat id when a group was upgraded to a supergroup (its id changes)."""
    msg = update.message
    if msg is None or not msg.migrate_to_chat_id:
        return None
    return str(msg.chat.id), str(msg.migrate_to_chat_id)


def bot_added(update: Update) -> bool:
    """True when this update says the bot was just added to a group."""
    change = update.my_chat_member
    if change is None or change.chat.type not in GROUP_TYPES:
        return False
    return change.new_chat_member.status in MEMBER_STATES and change.old_chat_member.status not in MEMBER_STATES
