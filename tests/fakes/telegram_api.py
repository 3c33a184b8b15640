"""The Bot API as the fake Telegram server checks it: the methods' fields (derived from the spec into
tests/fixtures/telegram/methods.json), parameter decoding, text and keyboard limits, error answers."""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"
SPEC: dict[str, dict[str, list[str]]] = json.loads((FIXTURES / "methods.json").read_text())["methods"]
JSON_FIELDS = {"reply_markup", "allowed_updates", "entities", "link_preview_options", "reply_parameters"}
INT_FIELDS = {"message_id", "offset", "limit", "timeout", "max_connections", "cache_time"}
BOOL_FIELDS = {"drop_pending_updates", "disable_notification", "show_alert", "protect_content"}
MESSAGE_METHODS = {"sendMessage", "sendDocument", "editMessageText", "editMessageReplyMarkup"}
SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def fixture(name: str) -> dict[str, Any]:
    """A recorded update payload from tests/fixtures/telegram/ (a fresh copy)."""
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


class ApiError(Exception):
    """An error answer: {"ok": false, "error_code", "description", "parameters"}."""

    def __init__(self, status: int, description: str, retry_after: int | None = None,
                 migrate_to_chat_id: int | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.retry_after = status, description, retry_after
        self.migrate_to_chat_id = migrate_to_chat_id


@dataclass
class ChatMessage:
    """One message in a chat, as the clients show it (and every text it has shown)."""

    message_id: int
    chat_id: int
    sender: str  # "bot" or the user's id
    text: str
    reply_markup: dict[str, Any] | None = None
    versions: list[str] = field(default_factory=list)
    edits: int = 0
    document: tuple[str, bytes] | None = None  # (file name, content) of a sendDocument


@dataclass
class Call:
    """One request the bot made."""

    method: str
    params: dict[str, Any]
    at: datetime
    status: int = 0  # 0 while being handled


@dataclass
class Fault:
    """An injected failure for the next `times` calls of `method` (to `chat_id`, if given)."""

    method: str
    status: int
    chat_id: int | None = None
    retry_after: int | None = None
    times: int = 1


def decode_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Form fields as PTB sends them (nested objects as JSON strings, numbers as text) -> values."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and key in JSON_FIELDS:
            try:
                value = json.loads(value)
            except ValueError:
                raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from None
        elif isinstance(value, str) and (key in INT_FIELDS or key == "chat_id") and re.fullmatch(r"-?\d+", value):
            value = int(value)
        elif key in BOOL_FIELDS and value in ("true", "false"):
            value = value == "true"
        out[key] = value
    return out


def check_text(p: dict[str, Any]) -> str:
    """A message text: 1–4096 UTF-16 units, plain (the fake parses no entities)."""
    text = str(p.get("text") or "")
    if not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if utf16_len(text) > 4096:
        raise ApiError(400, "Bad Request: message is too long")
    if "parse_mode" in p:
        raise ApiError(400, "Bad Request: this fake does not parse entities; send plain text")
    return text


def check_markup(markup: Any, inline_only: bool) -> dict[str, Any] | None:
    """Validate reply_markup as Telegram does (callback_data 1–64 bytes, one action per button)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        for row in markup["inline_keyboard"]:
            for b in row:
                actions = [k for k in b if k not in ("text", "style", "icon_custom_emoji_id")]
                if not b.get("text") or len(actions) != 1:
                    raise ApiError(400, "Bad Request: can't parse inline keyboard button")
                data = b.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup
    if inline_only:
        raise ApiError(400, "Bad Request: inline keyboard expected")
    if "keyboard" in markup:
        if not all(isinstance(b, dict) and b.get("text") for row in markup["keyboard"] for b in row):
            raise ApiError(400, "Bad Request: can't parse keyboard button")
        return markup
    if markup.get("remove_keyboard") is True or "force_reply" in markup:
        return markup
    raise ApiError(400, "Bad Request: unsupported reply_markup")
