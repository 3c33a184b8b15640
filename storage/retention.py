"""The retention purge: personal data older than `privacy.retention` is removed; counts stay.

What goes, and when (each a single statement, safe to run twice or from two workers at once):
- conversation states (unfinished forms and other open steps) not touched for `drafts_days`;
- address, phone and description of requests finished or cancelled more than `requests_days` ago, and
  the comments of their ratings (the request row, its status, hours and stars stay for statistics);
- a resident's name and phone (and their display names on the channels) once they have no request newer
  than `requests_days`, none still open, and no conversation in progress;
- the texts of crisis cases closed more than `cases_days` ago (the words that triggered them, the phone);
- delivered or failed outbox rows, the channels' transcripts (the simulator's chat log, WeCom kf send
  records: each channel names its table through its traits) and fired or cancelled timers older than
  `outbox_days` (they hold copies of the texts that were sent).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows import requests as rq
from storage.models import (
    ConversationState,
    CrisisCase,
    HelpRequest,
    Identity,
    OutboxMessage,
    Person,
    Rating,
    Timer,
)
from storage.sql import rowcount


@dataclass(frozen=True)
class Transcript:
    """A table where a channel keeps copies of a chat (named by the channel's traits, never here): its chat
    column and the column that dates a row."""

    table: Any
    chat: Any
    at: Any


@dataclass
class Purged:
    """How many rows each part of the purge touched (for the log: counts only, never content)."""

    drafts: int = 0
    requests: int = 0
    comments: int = 0
    residents: int = 0
    cases: int = 0
    outbox: int = 0
    transcripts: int = 0
    timers: int = 0

    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class Horizons:
    """The cut-off times: anything last touched before one of these is purged."""

    drafts: datetime
    requests: datetime
    outbox: datetime
    cases: datetime

    @classmethod
    def at(cls, now: datetime, drafts_days: int, requests_days: int, outbox_days: int,
           cases_days: int = 90) -> Horizons:
        return cls(now - timedelta(days=drafts_days), now - timedelta(days=requests_days),
                   now - timedelta(days=outbox_days), now - timedelta(days=cases_days))


def _ended_before(cut: datetime):  # type: ignore[no-untyped-def]
    """Requests that ended (finished or cancelled) before `cut`."""
    return or_(and_(HelpRequest.status == rq.FINISHED, HelpRequest.finished_at < cut),
               and_(HelpRequest.status == rq.CANCELLED, HelpRequest.closed_at < cut))


async def _talking(s: AsyncSession) -> set[str]:
    """People with a conversation in progress (keys are "channel:chat:user", user an account's external id)."""
    keys = (await s.execute(select(ConversationState.key))).scalars()
    accounts = {(k.split(":", 1)[0], k.rsplit(":", 1)[-1]) for k in keys}
    if not accounts:
        return set()
    rows = await s.execute(select(Identity.channel, Identity.external_id, Identity.person_id)
                           .where(Identity.external_id.in_({user for _, user in accounts})))
    return {pid for channel, user, pid in rows if (channel, user) in accounts}


async def purge(s: AsyncSession, h: Horizons, transcripts: Iterable[Transcript] = ()) -> Purged:
    """Remove what the horizons say is too old; returns counts."""
    out = Purged()
    out.drafts = await rowcount(s, delete(ConversationState).where(ConversationState.updated_at < h.drafts))
    ended = select(HelpRequest.id).where(_ended_before(h.requests)).scalar_subquery()
    out.comments = await rowcount(s, update(Rating).where(Rating.request_id.in_(ended), Rating.comment.is_not(None))
                                  .values(comment=None))
    out.requests = await rowcount(s, update(HelpRequest).where(
        _ended_before(h.requests),
        or_(HelpRequest.address != "", HelpRequest.phone != "", HelpRequest.description != ""))
        .values(address="", phone="", description=""))
    # residents with nothing recent, nothing open and no conversation in progress
    recent_or_open = exists().where(HelpRequest.resident_id == Person.id,
                                    or_(HelpRequest.created_at >= h.requests, ~_ended_before(h.requests)))
    quiet = and_(Person.is_resident, ~Person.is_volunteer, ~Person.is_coordinator, Person.created_at < h.requests,
                 ~recent_or_open, or_(Person.name != "", Person.phone.is_not(None)))
    ids = set((await s.execute(select(Person.id).where(quiet))).scalars()) - await _talking(s)
    if ids:
        out.residents = await rowcount(s, update(Person).where(Person.id.in_(ids)).values(name="", phone=None))
        await s.execute(update(Identity).where(Identity.person_id.in_(ids)).values(display_name=None))
    out.outbox = await rowcount(s, delete(OutboxMessage).where(OutboxMessage.status.in_(("sent", "failed")),
                                                               OutboxMessage.created_at < h.outbox))
    for tr in transcripts:
        out.transcripts += await rowcount(s, delete(tr.table).where(tr.at < h.outbox))
    out.cases = await rowcount(s, update(CrisisCase).where(
        CrisisCase.closed_at < h.cases, or_(CrisisCase.trigger_text != "", CrisisCase.phone.is_not(None)))
        .values(trigger_text="", phone=None))
    out.timers = await rowcount(s, delete(Timer).where(or_(Timer.fired_at.is_not(None), Timer.cancelled),
                                                       Timer.due_at < h.outbox))
    return out
