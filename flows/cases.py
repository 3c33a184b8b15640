"""A crisis case's life and how it is shown (pure): a person at risk is a case with a state, not a message.

open ──我来联系──▶ acknowledged ──已联系 + outcome──▶ contacted (follow-up) / closed
  ▲                    │                                   │
  └──────转给…─────────┘ (offered to another counsellor)    └──已联系 + final outcome──▶ closed

An open case nobody acknowledges climbs its chain every few minutes (handlers/crisis.py). Each press is one
conditional write (storage/repo.case_transition): two counsellors pressing 我来联系 at once, one wins.
"""
from __future__ import annotations

from dataclasses import dataclass

from flows import callbacks
from flows.i18n import t
from flows.types import Button, Message, rows

OPEN, ACKNOWLEDGED, CONTACTED, CLOSED = "open", "acknowledged", "contacted", "closed"
# the actions a case's history records (handlers/crisis.py), each with a catalog label case.event_<action>
EVENTS = ("opened", "words", "phone", "alerted", "escalated", "acknowledged", "outcome", "handed", "wrote")
LIVE = (OPEN, ACKNOWLEDGED, CONTACTED)
KINDS = ("self_harm", "medical")

# action -> the statuses it may start from (the write also requires the case to be nobody's or the actor's)
TRANSITIONS: dict[str, frozenset[str]] = {
    "ack": frozenset({OPEN}),
    "outcome": frozenset({OPEN, ACKNOWLEDGED, CONTACTED}),
    "hand": frozenset({OPEN, ACKNOWLEDGED}),
}
# outcome code -> the status it leads to
OUTCOMES: dict[str, str] = {
    "safe": CLOSED, "emergency": CLOSED, "referred": CLOSED, "followup": CONTACTED, "unreachable": ACKNOWLEDGED,
}
# history action names (catalog keys case.action.<name>)
ACTIONS = ("opened", "alerted", "words", "phone", "acknowledged", "outcome", "handed", "escalated", "wrote")

# callback actions of the case buttons
ACK, DONE, FORWARD, WRITE, OUTCOME, HAND_TO, RESUME = "cack", "cdone", "cfwd", "cmsg", "cout", "cto", "cres"
BUTTON_ACTIONS = (ACK, DONE, FORWARD, WRITE, OUTCOME, HAND_TO, RESUME)


def number(case_id: int) -> str:
    """How a case is named to staff: W0012."""
    return f"W{case_id:04d}"


def parse_number(text: str) -> int | None:
    """The case id in a case number as staff type it (W0012, w12), or None."""
    text = text.strip()
    if len(text) < 2 or text[0] not in "Ww" or not text[1:].isdigit() or len(text) > 12:
        return None
    return int(text[1:])


@dataclass(frozen=True)
class CaseView:
    """What an alert needs to show (resolved to names)."""

    id: int
    kind: str
    status: str
    community: str
    phone: str | None
    text: str
    channel: str
    assignee_name: str | None = None
    escalated: bool = False
    handed_by: str | None = None


def alert(v: CaseView, locale: str) -> Message:
    """The private alert to a counsellor or coordinator: what they need to act, with the case buttons."""
    phone = v.phone or t(locale, "case.no_phone")
    text = t(locale, f"case.alert_{v.kind}", case=number(v.id), community=v.community, phone=phone,
             channel=v.channel, text=v.text)
    if v.handed_by:
        text = t(locale, "case.handed_head", name=v.handed_by) + "\n" + text
    elif v.escalated:
        text = t(locale, "case.escalated_head") + "\n" + text
    buttons = [Button(t(locale, "case.btn_ack"), callbacks.make(ACK, v.id)),
               Button(t(locale, "case.btn_done"), callbacks.make(DONE, v.id)),
               Button(t(locale, "case.btn_forward"), callbacks.make(FORWARD, v.id)),
               Button(t(locale, "case.btn_write"), callbacks.make(WRITE, v.id))]
    return Message(text, rows(buttons, 2))


def outcome_question(case_id: int, locale: str) -> Message:
    """已联系: how did it go?"""
    buttons = [Button(t(locale, f"case.outcome.{code}"), callbacks.make(OUTCOME, case_id, code)) for code in OUTCOMES]
    return Message(t(locale, "case.ask_outcome", case=number(case_id)), rows(buttons, 1))


def hand_question(case_id: int, people: list[tuple[str, str]], locale: str) -> Message:
    """转给…: to whom (person id, name)?"""
    buttons = [Button(name, callbacks.make(HAND_TO, case_id, pid)) for pid, name in people]
    return Message(t(locale, "case.forward_pick", case=number(case_id)), rows(buttons, 2))


def resume_button(case_id: int, locale: str) -> tuple[tuple[Button, ...], ...]:
    """The resident's way back to the form they were filling in."""
    return ((Button(t(locale, "safety.resume"), callbacks.make(RESUME, case_id)),),)
