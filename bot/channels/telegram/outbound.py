"""Outbound helpers: keyboards, splitting long texts, rate-limit rules and Telegram's errors mapped to
the outbox's three outcomes (retry later, transient, permanent)."""
from __future__ import annotations

import logging
import warnings
from datetime import timedelta

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter, TelegramError

from bot.channels.base import PermanentSendError
from bot.ratelimit import Rule
from flows.types import Message

log = logging.getLogger(__name__)
MAX_TEXT = 4096  # UTF-16 code units, as Telegram counts
MAX_CAPTION = 1024  # a document's caption
# Telegram's limits (bot FAQ): ~1 message/s per chat with short bursts, 20/min per group, ~30/s overall
CHAT_BURST, CHAT_WINDOW = 4, 4.0
GROUP_LIMIT, GROUP_WINDOW = 20, 60.0
GLOBAL_LIMIT, GLOBAL_WINDOW = 30, 1.0


class TelegramSendError(Exception):
    """A transient failure talking to Telegram (network, 5xx); the outbox retries it with backoff."""


def chat_key(chat_id: str) -> str:
    """The limiter key of one chat (also blocked on a 429)."""
    return f"tg:chat:{chat_id}"


def rules(chat_id: str) -> list[Rule]:
    """Every limit a message to this chat counts against."""
    out = [Rule(chat_key(chat_id), CHAT_BURST, CHAT_WINDOW), Rule("tg:global", GLOBAL_LIMIT, GLOBAL_WINDOW)]
    if chat_id.startswith("-"):
        out.append(Rule(f"tg:group:{chat_id}", GROUP_LIMIT, GROUP_WINDOW))
    return out


def utf16_len(text: str) -> int:
    """Length as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> int:
    """How many characters of `text` fit in `limit` UTF-16 units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Parts of at most `limit` units, split after a line where possible, else between characters.

    Nothing is cut: joining the parts with the newlines they were split at gives the text back.
    """
    parts: list[str] = []
    while utf16_len(text) > limit:
        cut = _fit(text, limit)
        newline = text.rfind("\n", 0, cut + 1)
        if newline > cut // 2:
            parts.append(text[:newline])
            text = text[newline + 1:]
        else:
            parts.append(text[:cut])
            text = text[cut:]
    parts.append(text)
    return [p for p in parts if p.strip()] or [text]


def inline_markup(msg: Message) -> InlineKeyboardMarkup | None:
    """The message's buttons as an inline keyboard (Button.data is the callback data)."""
    if not msg.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.text, callback_data=b.data) for b in row]
                                 for row in msg.buttons])


def contact_keyboard(label: str) -> ReplyKeyboardMarkup:
    """A one-tap 'share my phone number' keyboard under the input field."""
    return ReplyKeyboardMarkup([[KeyboardButton(label, request_contact=True)]], resize_keyboard=True,
                               one_time_keyboard=True)


def retry_seconds(exc: RetryAfter) -> float:
    """retry_after in seconds (PTB 22 warns when reading it the old way; we accept both types)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def redact(text: str, token: str) -> str:
    """An error text without the bot token (PTB and httpx may put the request URL in it)."""
    return text.replace(token, "<token>") if token else text


def permanent_or_transient(exc: TelegramError, token: str) -> Exception:
    """What the outbox should make of an error (RetryAfter is handled before this)."""
    text = redact(str(exc), token)
    if isinstance(exc, Forbidden | ChatMigrated):
        return PermanentSendError(text)  # blocked, kicked, or the group became a supergroup
    if isinstance(exc, BadRequest):
        return PermanentSendError(text)  # chat not found, message gone, text refused: the same again fails
    if isinstance(exc, InvalidToken):
        log.error("Telegram rejected the bot token: check channels.telegram.token")
    return TelegramSendError(f"{type(exc).__name__}: {text}")


def not_modified(exc: TelegramError) -> bool:
    """Telegram's answer to an edit that changes nothing (harmless)."""
    return isinstance(exc, BadRequest) and "not modified" in str(exc).lower()
