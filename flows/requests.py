"""A help request's lifecycle (派单 → 接单 → 服务 → 评单) and how it is shown (see requests.mmd)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from flows import callbacks
from flows.i18n import t
from flows.privacy import mask_phone
from flows.types import Button, Message, rows

OPEN, CLAIMED, STARTED, FINISHED, CANCELLED = "open", "claimed", "started", "finished", "cancelled"

# action -> the statuses it may start from, and the status it leads to
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "claim": (frozenset({OPEN}), CLAIMED),
    "assign": (frozenset({OPEN}), CLAIMED),
    "release": (frozenset({CLAIMED, STARTED}), OPEN),
    "start": (frozenset({CLAIMED}), STARTED),
    "finish": (frozenset({CLAIMED, STARTED}), FINISHED),
    "cancel": (frozenset({OPEN, CLAIMED}), CANCELLED),
    "withdraw": (frozenset({OPEN, CLAIMED, STARTED}), CANCELLED),  # the resident erased their data (删除我的数据)
    "escalate": (frozenset({OPEN}), OPEN),  # passed to the parent level's team: only while nobody has it
}


def allowed(action: str, status: str) -> bool:
    """Whether `action` may happen to a request in `status`."""
    frm, _ = TRANSITIONS[action]
    return status in frm


def next_status(action: str) -> str:
    """The status an action leads to."""
    return TRANSITIONS[action][1]


@dataclass(frozen=True)
class RequestView:
    """What the texts need to know about a request (already resolved to names)."""

    id: int
    number: str
    status: str
    category: str
    service: str
    community: str
    when_text: str
    urgent: bool
    sensitive: bool = False
    broadcast: bool = True  # posted as a card in groups; False: only 1:1 to on-duty counsellors
    volunteer_name: str | None = None
    team_name: str = ""
    escalated: bool = False
    address: str = ""
    phone: str = ""
    description: str = ""
    for_whom: str = "self"
    resident_name: str = ""
    hours: float | None = None
    rated: bool = False


def _urgency(v: RequestView, locale: str) -> str:
    return t(locale, "card.urgent" if v.urgent else "card.normal")


def group_card(v: RequestView, locale: str) -> Message:
    """The card in a team's group: scannable, nothing personal."""
    head = t(locale, "card.head", category=v.category, service=v.service, number=v.number)
    line = t(locale, "card.line", community=v.community, when=v.when_text)
    if v.status == OPEN:
        extra = t(locale, "card.escalated") if v.escalated else ""
        text = f"{head}\n{line}    {_urgency(v, locale)}{extra}"
        return Message(text, ((Button(t(locale, "card.claim"), callbacks.make("claim", v.id)),),))
    state = {
        CLAIMED: t(locale, "card.claimed_by", name=v.volunteer_name or ""),
        STARTED: t(locale, "card.started_by", name=v.volunteer_name or ""),
        FINISHED: t(locale, "card.finished_by", name=v.volunteer_name or ""),
        CANCELLED: t(locale, "card.cancelled"),
    }[v.status]
    return Message(f"{head}\n{line}\n{state}")


def nudge(v: RequestView, locale: str) -> Message:
    """The private note to on-duty volunteers pointing at a new card."""
    if v.status != OPEN:
        return Message(t(locale, "nudge.closed", number=v.number, service=v.service,
                         state=group_card(v, locale).text.splitlines()[-1]))
    if v.broadcast:
        text = t(locale, "nudge.new", category=v.category, service=v.service, community=v.community,
                 when=v.when_text, team=v.team_name, number=v.number)
    else:
        text = t(locale, "nudge.new_private", category=v.category, service=v.service, community=v.community,
                 when=v.when_text, number=v.number)
    return Message(text, ((Button(t(locale, "card.claim"), callbacks.make("claim", v.id)),),))


def reminder(v: RequestView, locale: str) -> Message:
    """Reminder that a request is still waiting."""
    return Message(t(locale, "nudge.reminder", category=v.category, service=v.service,
                     community=v.community, when=v.when_text, number=v.number),
                   ((Button(t(locale, "card.claim"), callbacks.make("claim", v.id)),),))


def details(v: RequestView, locale: str) -> Message:
    """Full details for the volunteer who claimed it, with the actions that fit its status."""
    text = t(locale, "detail.text", category=v.category, service=v.service, number=v.number,
             community=v.community, when=v.when_text, address=v.address or "-", phone=v.phone or "-",
             description=v.description or "-", name=v.resident_name or "-",
             for_whom=t(locale, "intake.for_self" if v.for_whom == "self" else "intake.for_family"))
    buttons: list[Button] = []
    if v.status == CLAIMED:
        buttons.append(Button(t(locale, "detail.start"), callbacks.make("start", v.id)))
    if v.status in (CLAIMED, STARTED):
        buttons.append(Button(t(locale, "detail.finish"), callbacks.make("finish", v.id)))
        buttons.append(Button(t(locale, "detail.release"), callbacks.make("release", v.id)))
    else:
        text += "\n" + t(locale, f"detail.state_{v.status}")
    return Message(text, rows(buttons, 2))


def resident_line(v: RequestView, locale: str) -> str:
    """One line of a resident's "my requests" list."""
    state = t(locale, f"status.{v.status}", name=v.volunteer_name or "")
    return t(locale, "mine.line", number=v.number, service=v.service, when=v.when_text, state=state)


def resident_list(views: list[RequestView], locale: str) -> Message:
    """The resident's requests with a cancel button for each one still cancellable."""
    if not views:
        return Message(t(locale, "mine.empty"))
    lines = [t(locale, "mine.head")] + [resident_line(v, locale) for v in views]
    buttons = [Button(t(locale, "mine.cancel", number=v.number[-4:]), callbacks.make("cancel", v.id))
               for v in views if allowed("cancel", v.status)]
    return Message("\n".join(lines), rows(buttons, 2))


def rating_prompt(v: RequestView, locale: str) -> Message:
    """Ask the resident to rate a finished service, 1–5 stars."""
    stars = [Button("⭐" * n, callbacks.make("rate", v.id, n)) for n in range(1, 6)]
    return Message(t(locale, "rating.ask", name=v.volunteer_name or "", number=v.number),
                   (tuple(stars[:3]), tuple(stars[3:])))


def hours_prompt(v: RequestView, hours: float, locale: str) -> Message:
    """Ask the volunteer to confirm the prefilled hours or change them."""
    return Message(t(locale, "hours.ask", number=v.number, hours=fmt_hours(hours)),
                   ((Button(t(locale, "hours.ok"), callbacks.make("hoursok", v.id)),
                     Button(t(locale, "hours.change"), callbacks.make("hourset", v.id))),))


def half_hours(hours: float) -> float:
    """Round to the nearest half hour, halves up (75 minutes are 1.5 h, not 1 h)."""
    return math.floor(hours * 2 + 0.5) / 2


def fmt_hours(h: float) -> str:
    """1.5 -> '1.5', 2.0 -> '2'."""
    return f"{h:.1f}".rstrip("0").rstrip(".")


def masked(v: RequestView) -> str:
    """The phone as shown to anyone but the claimer."""
    return mask_phone(v.phone)


def star_level(total_hours: float, thresholds: list[float]) -> int:
    """Star level (0–5) reached by cumulative hours."""
    return sum(1 for th in thresholds if total_hours >= th)
