"""The life of a help request after it is submitted, as pure steps (see requests.mmd).

Each step takes what is known about the request (`Facts`) and who acts, and returns the effects to apply,
in order, inside the event's one transaction (handlers/effects.py is the one interpreter). The first effect
of a step that changes the status is a `Transition`, built from the one table in flows/requests.py: the
interpreter makes it a conditional write, and if another event got there first, none of the step's other
effects happen. No I/O here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flows import privacy
from flows import requests as rq

WAITING_TIMERS = ("remind", "escalate")


@dataclass(frozen=True)
class Facts:
    """What a step may know about a request (names in the configured default language)."""

    id: int
    number: str
    status: str
    team_id: str
    station_id: str
    resident_id: str
    resident_locale: str = "zh_CN"
    volunteer_id: str | None = None
    claimed_at: datetime | None = None
    started_at: datetime | None = None
    escalation_level: int = 0
    service: str = ""
    community: str = ""


@dataclass(frozen=True)
class Settings:
    """The timings and recognition rules the steps need (from config)."""

    remind_after_minutes: int = 30
    escalate_after_minutes: int = 60
    rating_after_minutes: int = 0
    hours_max: float = 12
    points_per_hour: float = 10


# ---- effects --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Transition:
    """Conditional write of `action` (from TRANSITIONS) with these values; the gate of the step."""

    action: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class History:
    """A line of the request's history."""

    actor_id: str | None
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refresh:
    """Re-render every copy of the request's cards and messages (only the changed ones are edited)."""


@dataclass(frozen=True)
class AddClaim:
    """Record who claimed it, and how (press or assign)."""

    volunteer_id: str
    via: str


@dataclass(frozen=True)
class ReleaseClaims:
    """Mark the open claims given back."""


@dataclass(frozen=True)
class PostDetail:
    """The full details, privately, to the person who now has the request (an audited reveal: `reason`)."""

    person_id: str
    reason: str = "claimed"


@dataclass(frozen=True)
class TellResident:
    """A message to the resident, in the chat they asked from, in their language."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TellClaimer:
    """A message to whoever has the request as the transition left it (read from the write itself)."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertCoordinators:
    """A message to the coordinators in charge of the request's station."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dispatch:
    """Post the request to a team: its groups' cards, nudges to who is on duty, the waiting timers (and an
    escalation at once when nobody is on duty)."""

    team_id: str
    reason: str


@dataclass(frozen=True)
class Nudge:
    """Tell the team's on-duty volunteers privately (except one person), and restart the waiting timers."""

    team_id: str
    except_id: str | None = None


@dataclass(frozen=True)
class Remind:
    """Remind the team's on-duty volunteers and its groups that the request still waits."""

    team_id: str


@dataclass(frozen=True)
class CancelTimers:
    """Cancel the request's pending timers of these kinds."""

    kinds: tuple[str, ...]


@dataclass(frozen=True)
class AddTimer:
    """A durable timer for the request."""

    kind: str
    after_minutes: int
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordHours:
    """Write (or correct) the service record: hours and points (奖单)."""

    volunteer_id: str
    hours: float
    points: float


@dataclass(frozen=True)
class AskHours:
    """Ask the volunteer to confirm or change the hours."""

    volunteer_id: str
    hours: float


@dataclass(frozen=True)
class AskRating:
    """Ask the resident to rate the service (and wait for it in their conversation)."""


@dataclass(frozen=True)
class AddRating:
    """Record the rating; a gate like a Transition: a request is rated once, the first rating stands."""

    stars: int


@dataclass(frozen=True)
class AddComment:
    """The resident's words about the service, kept with their rating."""

    text: str


Effect = (Transition | History | Refresh | AddClaim | ReleaseClaims | PostDetail | TellResident | TellClaimer
          | AlertCoordinators | Dispatch | Nudge | Remind | CancelTimers | AddTimer | RecordHours | AskHours
          | AskRating | AddRating | AddComment)
GATES = (Transition, AddRating)
Step = tuple[Effect, ...]


# ---- steps ----------------------------------------------------------------------------------------------

def claim_refusal(is_volunteer: bool, in_routed_team: bool, trained: bool) -> str | None:
    """Why a person may not claim (a catalog key), or None."""
    if not is_volunteer:
        return "claim.not_volunteer"
    if not in_routed_team:
        return "claim.not_in_team"
    if not trained:
        return "claim.not_trained"
    return None


def claim(f: Facts, volunteer_id: str, volunteer_name: str, via: str, actor_id: str, now: datetime) -> Step:
    """接单 (via "press") or /assign (via "assign"): the first write wins."""
    return (
        Transition("claim" if via == "press" else "assign", {"volunteer_id": volunteer_id, "claimed_at": now}),
        AddClaim(volunteer_id, via),
        History(actor_id, "claimed" if via == "press" else "assigned", {"volunteer": volunteer_id}),
        CancelTimers(WAITING_TIMERS),
        Refresh(),
        PostDetail(volunteer_id, "claimed" if via == "press" else "assigned"),
        TellResident("resident.claimed", {"number": f.number, "name": volunteer_name}),
    )


def release(f: Facts, volunteer_id: str) -> Step:
    """The claimer gives it back (无法前往，退回): open to the team again, the others nudged."""
    return (
        Transition("release", {"volunteer_id": None, "claimed_at": None, "started_at": None}),
        ReleaseClaims(),
        History(volunteer_id, "released"),
        Refresh(),
        TellResident("resident.released", {"number": f.number}),
        Nudge(f.team_id, except_id=volunteer_id),
    )


def start(f: Facts, volunteer_id: str, volunteer_name: str, now: datetime) -> Step:
    """出发."""
    return (
        Transition("start", {"started_at": now}),
        History(volunteer_id, "started"),
        Refresh(),
        TellResident("resident.started", {"number": f.number, "name": volunteer_name}),
    )


def default_hours(f: Facts, now: datetime, hours_max: float) -> float:
    """Hours from start (or claim) to now, rounded to half hours, within 0.5 and `hours_max`."""
    begin = f.started_at or f.claimed_at or now
    hours = math.floor((now - begin).total_seconds() / 3600 * 2 + 0.5) / 2
    return min(max(hours, 0.5), hours_max)


def finish(f: Facts, volunteer_id: str, now: datetime, s: Settings) -> Step:
    """完成服务: hours recorded (to be confirmed), the resident asked for a rating now or later."""
    hours = default_hours(f, now, s.hours_max)
    ask: Effect = (AddTimer("rate", s.rating_after_minutes) if s.rating_after_minutes else AskRating())
    return (
        Transition("finish", {"finished_at": now, "hours": hours}),
        RecordHours(volunteer_id, hours, round(hours * s.points_per_hour, 1)),
        History(volunteer_id, "finished", {"hours": hours}),
        Refresh(),
        AskHours(volunteer_id, hours),
        ask,
    )


def cancel(f: Facts, actor_id: str, now: datetime, erased: bool = False) -> Step:
    """The resident cancels an open or claimed request; whoever has it (as written) is told. With `erased`
    (删除我的数据) a request already under way is withdrawn too, and the claimer is told why."""
    return (
        Transition("withdraw" if erased else "cancel", {"closed_at": now}),
        History(actor_id, "cancelled"),
        CancelTimers((*WAITING_TIMERS, "rate")),
        Refresh(),
        TellClaimer("detail.withdrawn_by_resident" if erased else "detail.cancelled_by_resident",
                    {"number": f.number}),
    )


def escalate(f: Facts, why: str, from_team: str, from_name: str, parent: tuple[str, str] | None) -> Step:
    """Nobody took it in time (why="timeout") or nobody is on duty (why="nobody_on_duty"): pass it to the
    parent level's team (id, name), or, at the top, ask the coordinators to assign it by hand."""
    names = {"number": f.number, "service": f.service, "community": f.community}
    if parent is None:
        return (Transition("escalate"), History(None, "stuck", {"why": why}),
                AlertCoordinators(f"coord.stuck_{why}", names))
    team_id, team_name = parent
    return (
        Transition("escalate", {"team_id": team_id, "escalation_level": f.escalation_level + 1}),
        AlertCoordinators(f"coord.escalated_{why}", {**names, "team": team_name, "from_team": from_name}),
        Refresh(),
        Dispatch(team_id, "escalate"),
    )


def remind(f: Facts, team_id: str) -> Step:
    """The remind timer of an open request (nothing if it is no longer open)."""
    if f.status != rq.OPEN:
        return ()
    return (History(None, "reminded", {"team": team_id}), Remind(team_id))


def rate(f: Facts, stars: int, resident_id: str, volunteer_name: str, low_max: int = 2) -> Step:
    """评单: the resident's 1–5 stars, once; a low rating alerts the coordinators in charge (回访)."""
    if f.status != rq.FINISHED or not 1 <= stars <= 5:
        return ()
    step: list[Effect] = [AddRating(stars), History(resident_id, "rated", {"stars": stars})]
    if stars <= low_max:
        step.append(AlertCoordinators("coord.low_rating", {"number": f.number, "stars": stars,
                                                           "volunteer": volunteer_name or "-"}))
    return tuple(step)


def correct_hours(f: Facts, volunteer_id: str, hours: float, s: Settings) -> Step:
    """The claimer changes the recorded hours of a finished service (half hours, 0.5 … hours_max; the points
    follow). Nothing for anyone else, another state, or hours out of bounds (the caller says why)."""
    if f.status != rq.FINISHED or f.volunteer_id != volunteer_id or not 0.5 <= hours <= s.hours_max:
        return ()
    return (RecordHours(volunteer_id, hours, round(hours * s.points_per_hour, 1)),
            History(volunteer_id, "hours", {"hours": hours}))


def comment(f: Facts, resident_id: str, text: str, stars: int | None, low_max: int = 2, limit: int = 500) -> Step:
    """The resident's comment after rating: kept with the rating; after a low rating it also goes to the
    coordinators in charge (回访), with phone numbers in it masked."""
    text = text.strip()[:limit]
    if f.status != rq.FINISHED or resident_id != f.resident_id or stars is None or not text:
        return ()
    step: list[Effect] = [AddComment(text)]
    if stars <= low_max:
        step.append(AlertCoordinators("coord.low_rating_comment", {"number": f.number,
                                                                   "comment": privacy.mask_text(text)}))
    return tuple(step)


def timer_step(f: Facts, kind: str, rated: bool) -> str | None:
    """Which step a due timer of this request leads to: "remind", "escalate", "rate" or None (stale)."""
    if kind in ("remind", "escalate") and f.status == rq.OPEN:
        return kind
    if kind == "rate" and f.status == rq.FINISHED and not rated:
        return "rate"
    return None
