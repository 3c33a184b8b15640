"""The resident's rights (PIPL): the privacy notice, what is kept about a person, masking. Pure, no I/O."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from flows import callbacks
from flows.i18n import LOCALES, t, words
from flows.types import Button, Document, Message, rows

# phone-looking numbers in free text: mobiles (13812345678, 138 1234 5678, 138-1234-5678, +86…) and
# landlines with an area code (010-12345678, 0571 8888 6666)
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})[\s-]?(\d{3,4})[\s-]?(\d{4})(?!\d)")


def mask_phone(phone: str) -> str:
    """138****5678: a phone shown anywhere but to the claimer (and the counsellor of a case)."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_text(text: str) -> str:
    """Free text (a comment, a message) with every phone-looking number masked."""
    text = _MOBILE.sub(lambda m: f"{m[1]}****{m[3]}", text)
    return _LANDLINE.sub(lambda m: f"{m[1]}****{m[3]}", text)


# ---- the notice ------------------------------------------------------------------------------------------

def notice(locale: str, with_buttons: bool, drafts_days: int = 3, requests_days: int = 180) -> Message:
    """The short privacy notice: what is collected, why, who sees it, how long (privacy.retention), how to
    delete; with the accept / decline buttons when the person has not accepted it yet."""
    text = t(locale, "privacy.notice", drafts_days=drafts_days, requests_days=requests_days)
    if not with_buttons:
        return Message(text + "\n" + t(locale, "privacy.accepted_already"))
    buttons = [Button(t(locale, "privacy.accept"), callbacks.make("p", "accept")),
               Button(t(locale, "privacy.decline"), callbacks.make("p", "decline"))]
    return Message(text + "\n" + t(locale, "privacy.please_accept"), rows(buttons, 2))


def erase_confirm(locale: str, open_count: int) -> Message:
    """删除我的数据: what will happen, irreversible, with a confirm button (and a way out)."""
    buttons = [Button(t(locale, "rights.erase_yes"), callbacks.make("p", "erase")),
               Button(t(locale, "rights.erase_no"), callbacks.make("p", "keep"))]
    return Message(t(locale, "rights.erase_ask", open=open_count), rows(buttons, 1))


def chosen(data: str | None, text: str, accept_key: str, decline_key: str, accept_action: str,
           decline_action: str, yes_words: str | None = None, no_words: str | None = None) -> str | None:
    """Which of two buttons a press, a typed number (1, 2), the button's words (in any language) or other
    words for them (keyword keys) chose: 'yes', 'no' or None."""
    cb = callbacks.parse(data)
    if cb is not None:
        return "yes" if cb.target == accept_action else "no" if cb.target == decline_action else None
    clean = text.strip().lower()

    def said(key: str, more: str | None) -> set[str]:
        return {t(loc, key).lower() for loc in LOCALES} | (words(more) if more else set())

    if clean == "1" or clean in said(accept_key, yes_words):
        return "yes"
    if clean == "2" or clean in said(decline_key, no_words):
        return "no"
    return None


# ---- what is kept about a person -------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestData:
    """One request of the person as stored."""

    number: str
    category: str
    service: str
    community: str
    status: str
    created: str  # local time, readable
    when: str
    for_whom: str
    address: str
    phone: str
    description: str
    rating: int | None = None
    comment: str | None = None


@dataclass(frozen=True)
class PersonData:
    """Everything stored about a person that the bot can show them."""

    person_id: str
    name: str
    phone: str
    community: str
    language: str
    created: str
    privacy_accepted: str
    accounts: tuple[str, ...] = ()  # channels they write from
    requests: tuple[RequestData, ...] = ()
    chat_messages: int = 0  # chat transcript lines kept (the simulator's log, messages waiting to be sent)
    draft: dict[str, Any] = field(default_factory=dict)  # a form being filled in


def summary(d: PersonData, locale: str) -> str:
    """我的数据: a readable summary (phones shown in full: the person is looking at their own data)."""
    none = t(locale, "rights.none")
    lines = [t(locale, "rights.mine_head"),
             t(locale, "rights.mine_person", name=d.name or none, phone=d.phone or none,
               community=d.community or none, created=d.created, accepted=d.privacy_accepted or none,
               accounts="、".join(d.accounts) or none)]
    if d.draft:
        lines.append(t(locale, "rights.mine_draft"))
    if d.requests:
        lines.append(t(locale, "rights.mine_requests", count=len(d.requests)))
        for r in d.requests:
            lines.append(t(locale, "rights.mine_request", number=r.number, service=r.service, status=r.status,
                           address=r.address or none, phone=r.phone or none, description=r.description or none))
            if r.rating is not None:
                lines.append(t(locale, "rights.mine_rating", stars=r.rating, comment=r.comment or none))
    else:
        lines.append(t(locale, "rights.mine_no_requests"))
    lines.append(t(locale, "rights.mine_chat", count=d.chat_messages))
    lines.append(t(locale, "rights.mine_foot"))
    return "\n".join(lines)


def export(d: PersonData, exported_at: str) -> Document:
    """导出我的数据: the same data as a JSON file."""
    body = {
        "exported_at": exported_at,
        "person": {"id": d.person_id, "name": d.name, "phone": d.phone, "community": d.community,
                   "language": d.language, "created": d.created, "privacy_accepted": d.privacy_accepted,
                   "accounts": list(d.accounts)},
        "requests": [r.__dict__ for r in d.requests],
        "chat_messages_kept": d.chat_messages,
        "draft": d.draft,
    }
    return Document(filename=f"wuwei-data-{d.person_id}.json", mime="application/json",
                    content=json.dumps(body, ensure_ascii=False, indent=2))
