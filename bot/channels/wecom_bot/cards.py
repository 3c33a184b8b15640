"""Pure helpers of the smart-robot channel: a core Message as a WeCom template card or markdown, task ids,
and reading the callback frames (the @-mention in front of a command, the two shapes of a click)."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from flows.types import Message

MAX_BUTTONS = 6
MAX_BUTTON_TEXT = 10
TITLE_SUGGESTED = 26
MARKDOWN_BYTES = 4000  # WeCom takes 4096 bytes of markdown; keep a margin
TASK_ID_RE = re.compile(r"^[0-9a-zA-Z_\-@]{1,128}$")
MENTION_RE = re.compile(r"^(?:\s*@\S+)+\s*")


def new_task_id(kind: str = "c") -> str:
    """A fresh task id: unique per robot, `[0-9a-zA-Z_-@]`, well under 128 bytes. The first letter says
    what was pushed: c = template card, m = markdown."""
    return f"{kind}{uuid.uuid4().hex}"


def is_card_id(message_id: str) -> bool:
    """True for the id of a template card we pushed (one a click's req_id can update)."""
    return message_id.startswith("c") and bool(TASK_ID_RE.match(message_id))


def _title(first_line: str) -> tuple[str, str]:
    """The main title and its description: a long first line is split after its 【…】 head, else at its
    last space before the suggested 26 characters ("【为老服务 · 陪同就医】" + "编号 …")."""
    line = first_line.strip()
    if len(line) <= TITLE_SUGGESTED:
        return line, ""
    bracket = line.find("】")
    cut = bracket + 1 if 0 < bracket < TITLE_SUGGESTED else line.rfind(" ", 0, TITLE_SUGGESTED + 1)
    if cut <= 0:
        return line[:TITLE_SUGGESTED], line[TITLE_SUGGESTED:].strip()
    return line[:cut].rstrip(" ·"), line[cut:].strip()


def template_card(msg: Message, task_id: str, closed_label: str, note: str = "",
                  closed_key: str = "") -> dict[str, Any]:
    """A button_interaction card showing exactly the message's (privacy-safe) text. Its buttons become
    card buttons (≤6, ≤10 characters, key = callback data); a message without buttons (taken, done,
    cancelled) keeps one quiet button labelled `closed_label` so the card stays a valid interaction card
    and a late click still gets an answer."""
    lines = msg.text.splitlines() or [""]
    title, desc = _title(lines[0])
    main: dict[str, str] = {"title": title}
    if desc:
        main["desc"] = desc
    body = "\n".join(line for line in lines[1:] if line.strip())
    if note:
        body = f"{body}\n\n{note}" if body else note
    buttons = [{"text": b.text[:MAX_BUTTON_TEXT], "style": 1, "key": b.data}
               for b in msg.flat_buttons()[:MAX_BUTTONS]]
    if not buttons:
        buttons = [{"text": closed_label[:MAX_BUTTON_TEXT], "style": 2, "key": closed_key or f"closed:{task_id}"}]
    card: dict[str, Any] = {"card_type": "button_interaction", "main_title": main, "task_id": task_id,
                            "button_list": buttons}
    if body:
        card["sub_title_text"] = body
    return card


def markdown(text: str) -> dict[str, Any]:
    """A markdown message body (our texts carry no markdown of their own)."""
    return {"msgtype": "markdown", "markdown": {"content": text}}


def split_text(text: str, limit: int = MARKDOWN_BYTES) -> list[str]:
    """A text in pieces of at most `limit` UTF-8 bytes, cut at line ends where possible, never inside a
    character."""
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode()) > limit:  # a line longer than a piece: cut it by characters
            cut = len(line.encode()[:limit].decode(errors="ignore"))
            pieces += [current, line[:cut]]
            current, line = "", line[cut:]
        if len((current + line).encode()) > limit:
            pieces.append(current)
            current = ""
        current += line
    pieces.append(current)
    return [p.rstrip("\n") for p in pieces if p.strip()] or [text]


def notice(msg: Message) -> str:
    """What changed on a card that can no longer be edited: its first line (category, service, number)
    and its last line (the new state, e.g. "✅ 已由 李明 接单")."""
    lines = [line for line in msg.text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return msg.text
    return f"{lines[0]}\n{lines[-1]}"


def strip_mention(text: str) -> str:
    """A group message without the leading @-mention(s) of the robot: "@五为 /bind t-1" -> "/bind t-1".
    If the robot's name has spaces, the command still starts at the first " /"."""
    rest = MENTION_RE.sub("", text, count=1).strip()
    if not rest.startswith("/") and " /" in rest:
        rest = rest[rest.index(" /") + 1:]
    return rest


@dataclass(frozen=True)
class CardClick:
    """A template_card_event: which card (task id) and which button (event key, our callback data)."""

    task_id: str
    event_key: str


def card_click(event: dict[str, Any]) -> CardClick | None:
    """The click in an event body, whether nested (WeCom's doc: event.template_card_event {…}) or flat
    (the node SDK's types: the fields directly in event)."""
    inner = event.get("template_card_event")
    src = inner if isinstance(inner, dict) else event
    task_id, key = src.get("task_id"), src.get("event_key")
    if not isinstance(task_id, str) or not isinstance(key, str) or not task_id or not key:
        return None
    return CardClick(task_id, key)
