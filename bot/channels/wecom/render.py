"""Channel-neutral Messages as WeCom payloads: kf text / msgmenu / file, app text / template cards.

Limits (PROTOCOLS.md): text ≤ 2048 bytes (split on character boundaries, at a line end when one is
near); msgmenu head ≤ 1024 B, ≤ 10 click items (id ≤ 64 B, content ≤ 128 B); card buttons ≤ 6, their
text ≤ 10 characters.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from flows.types import Button, Message

TEXT_BYTES = 2048
MENU_HEAD_BYTES = 1024
MENU_ITEMS = 10
ITEM_ID_BYTES = 64
ITEM_TEXT_BYTES = 128
CARD_BUTTONS = 6
BUTTON_CHARS = 10
TITLE_CHARS = 26
SUB_TITLE_CHARS = 1000
PLACEHOLDER_URL = "https://work.weixin.qq.com/"  # text_notice cards need an action; this one is harmless


def cut_bytes(text: str, limit: int) -> str:
    """The longest prefix of `text` that fits in `limit` UTF-8 bytes (never half a character)."""
    return text.encode()[:limit].decode(errors="ignore")


def split_bytes(text: str, limit: int = TEXT_BYTES) -> list[str]:
    """`text` in pieces of at most `limit` bytes, cut after a newline when one is in the second half."""
    parts: list[str] = []
    rest = text
    while len(rest.encode()) > limit:
        piece = cut_bytes(rest, limit)
        nl = piece.rfind("\n")
        if nl >= len(piece) // 2:
            piece = piece[: nl + 1]
        parts.append(piece.rstrip("\n") or piece)
        rest = rest[len(piece):]
    if rest or not parts:
        parts.append(rest)
    return parts


def _numbered(msg: Message) -> str:
    lines = [f"{i}. {b.text}" for i, b in enumerate(msg.flat_buttons(), 1)]
    return "\n".join([msg.text, *lines]) if lines else msg.text


def _fits_menu(buttons: list[Button]) -> bool:
    return 0 < len(buttons) <= MENU_ITEMS and all(len(b.data.encode()) <= ITEM_ID_BYTES for b in buttons)


def kf_payloads(msg: Message) -> list[dict[str, Any]]:
    """kf/send_msg bodies (without touser/open_kfid/msgid); a message with buttons is one msgmenu. A document is
    its text first (the caption, when there is one), then a file message whose media_id the sender fills in
    after media/upload: two messages of kf's budget."""
    if msg.document is not None:
        caption = kf_payloads(Message(msg.text, msg.buttons)) if msg.text or msg.buttons else []
        return [*caption, {"msgtype": "file", "file": {"media_id": ""}}]
    buttons = msg.flat_buttons()
    if not _fits_menu(buttons):
        return [{"msgtype": "text", "text": {"content": p}} for p in split_bytes(_numbered(msg))]
    out: list[dict[str, Any]] = []
    head = msg.text
    if len(head.encode()) > MENU_HEAD_BYTES:  # say the long part as text, keep the question in the menu
        lines = head.rstrip().split("\n")
        head = lines[-1] if len(lines[-1].encode()) <= MENU_HEAD_BYTES else cut_bytes(lines[-1], MENU_HEAD_BYTES)
        out = [{"msgtype": "text", "text": {"content": p}} for p in split_bytes("\n".join(lines[:-1]) or msg.text)]
    items = [{"type": "click", "click": {"id": b.data, "content": cut_bytes(b.text, ITEM_TEXT_BYTES)}}
             for b in buttons]
    out.append({"msgtype": "msgmenu", "msgmenu": {"head_content": head, "list": items}})
    return out


def _titles(text: str) -> tuple[str, str]:
    first, _, rest = text.strip().partition("\n")
    if len(first) > TITLE_CHARS:
        return first[: TITLE_CHARS - 1] + "…", text.strip()[:SUB_TITLE_CHARS]
    return first, rest.strip()[:SUB_TITLE_CHARS]


def card(msg: Message, task_id: str) -> dict[str, Any]:
    """A template card: button_interaction when there are buttons, else a text notice."""
    title, sub = _titles(msg.text)
    body: dict[str, Any] = {"main_title": {"title": title}, "task_id": task_id}
    if sub:
        body["sub_title_text"] = sub
    buttons = msg.flat_buttons()[:CARD_BUTTONS]
    if not buttons:
        return {"card_type": "text_notice", **body, "card_action": {"type": 1, "url": PLACEHOLDER_URL}}
    body["button_list"] = [{"text": b.text[:BUTTON_CHARS], "style": 1, "key": b.data} for b in buttons]
    return {"card_type": "button_interaction", **body}


def digest(msg: Message) -> str:
    """A fingerprint of what a message shows (to skip edits that change nothing); its first letter says
    whether it had buttons ("b") or not ("t")."""
    raw = json.dumps([msg.text, [[b.text, b.data] for b in msg.flat_buttons()]], ensure_ascii=False)
    return ("b" if msg.buttons else "t") + hashlib.sha256(raw.encode()).hexdigest()[:63]
