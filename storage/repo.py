"""Repositories: the queries. They never commit; the dispatcher owns the transaction."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from flows.requests import TRANSITIONS
from flows.types import ConversationKey
from storage.db import utcnow
from storage.models import (
    Claim,
    ConversationState,
    Counter,
    DutyOverride,
    EventFailure,
    GroupBinding,
    HelpRequest,
    Identity,
    LedgerEntry,
    OutboxMessage,
    Person,
    ProcessedEvent,
    Rating,
    RequestEvent,
    RequestRoute,
    ServiceRecord,
    Team,
    TeamMember,
    Timer,
)
from storage.sql import _insert, rowcount

# ---- dedupe -------------------------------------------------------------------------------------

# Statements every event runs, built once (Core, bound parameters): building and keying a statement anew for
# each event costs more than executing it.
_MARK = {name: dialect.insert(ProcessedEvent.__table__).on_conflict_do_nothing(index_elements=["channel", "event_id"])
         for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}
_WAS_PROCESSED = select(ProcessedEvent.at).where(ProcessedEvent.channel == bindparam("channel"),
                                                ProcessedEvent.event_id == bindparam("event_id"))
_PERSON_FOR_IDENTITY = select(Person).join(Identity, Identity.person_id == Person.id).where(
    Identity.channel == bindparam("channel"), Identity.external_id == bindparam("external_id"))
_ADD_IDENTITY = insert(cast(Table, Identity.__table__))
_BUSY_CHATS = select(OutboxMessage.channel, OutboxMessage.chat_id).where(
    OutboxMessage.status == "pending", OutboxMessage.chat_id.in_(bindparam("chats", expanding=True))).distinct()
_OUTBOX = cast(Table, OutboxMessage.__table__)
_ADD_OUTBOX = insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True)


async def mark_processed(s: AsyncSession, channel: str, event_id: str, now: datetime) -> bool:
    """Record an inbound event id; False if it was handled before."""
    stmt = _MARK[s.get_bind().dialect.name]
    return await rowcount(s, stmt, {"channel": channel, "event_id": event_id, "at": now}) == 1


async def was_processed(s: AsyncSession, channel: str, event_id: str) -> bool:
    """Whether an inbound event id was handled (a read; mark_processed is the write that decides)."""
    return (await s.execute(_WAS_PROCESSED, {"channel": channel, "event_id": event_id})).first() is not None


async def prune_processed(s: AsyncSession, before: datetime) -> int:
    """Forget event ids older than any platform redelivers (keeps the dedupe table small)."""
    await s.execute(delete(EventFailure).where(EventFailure.last_at < before))
    return await rowcount(s, delete(ProcessedEvent).where(ProcessedEvent.at < before))


async def count_failure(s: AsyncSession, channel: str, event_id: str, now: datetime) -> int:
    """Count one more failed attempt at handling an event; returns how many there have been."""
    stmt = _insert(s)(EventFailure).values(channel=channel, event_id=event_id, attempts=1, last_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=["channel", "event_id"],
                                      set_={"attempts": EventFailure.attempts + 1, "last_at": now})
    return int((await s.execute(stmt.returning(EventFailure.attempts))).scalar_one())


# ---- people -------------------------------------------------------------------------------------

async def get_person(s: AsyncSession, person_id: str) -> Person | None:
    """A person by id."""
    return await s.get(Person, person_id)


async def person_for_identity(s: AsyncSession, channel: str, external_id: str) -> Person | None:
    """The person behind a platform account, if known."""
    found = await s.execute(_PERSON_FOR_IDENTITY, {"channel": channel, "external_id": external_id})
    return found.scalar_one_or_none()


async def create_resident(s: AsyncSession, channel: str, external_id: str, chat_id: str, name: str,
                          now: datetime) -> Person:
    """A new resident with an identity on this channel."""
    person = Person(id="r-" + uuid.uuid4().hex[:12], name=name[:100], is_resident=True, created_at=now)
    s.add(person)
    await s.flush()
    await s.execute(_ADD_IDENTITY, {"channel": channel, "external_id": external_id, "person_id": person.id,
                                    "chat_id": chat_id, "display_name": name[:100]})
    return person


async def identities_of(s: AsyncSession, person_ids: Iterable[str]) -> list[Identity]:
    """All platform accounts of these people (where private messages to them go)."""
    ids = list(person_ids)
    if not ids:
        return []
    q = select(Identity).where(Identity.person_id.in_(ids), Identity.chat_id.is_not(None))
    return list((await s.execute(q.order_by(Identity.channel))).scalars())


async def team_ids_of(s: AsyncSession, person_id: str) -> set[str]:
    """The teams a volunteer belongs to."""
    q = select(TeamMember.team_id).where(TeamMember.person_id == person_id)
    return set((await s.execute(q)).scalars())


async def team_members(s: AsyncSession, team_id: str) -> list[Person]:
    """The members of a team."""
    q = select(Person).join(TeamMember, TeamMember.person_id == Person.id).where(TeamMember.team_id == team_id)
    return list((await s.execute(q.order_by(Person.id))).scalars())


async def coordinators(s: AsyncSession) -> list[Person]:
    """Every coordinator."""
    q = select(Person).where(Person.is_coordinator.is_(True)).order_by(Person.id)
    return list((await s.execute(q)).scalars())


async def volunteers(s: AsyncSession) -> list[Person]:
    """Every volunteer."""
    q = select(Person).where(Person.is_volunteer.is_(True)).order_by(Person.id)
    return list((await s.execute(q)).scalars())


async def find_volunteer(s: AsyncSession, key: str) -> Person | None:
    """A volunteer by id or exact name."""
    q = select(Person).where(Person.is_volunteer.is_(True), (Person.id == key) | (Person.name == key))
    return (await s.execute(q.limit(1))).scalar_one_or_none()


async def group_bindings(s: AsyncSession, team_id: str) -> list[GroupBinding]:
    """The group chats (any channel) bound to a team."""
    q = select(GroupBinding).where(GroupBinding.team_id == team_id).order_by(GroupBinding.channel)
    return list((await s.execute(q)).scalars())


# ---- conversation state ---------------------------------------------------------------------------

async def get_state(s: AsyncSession, key: ConversationKey) -> ConversationState | None:
    """The conversation state of one person in one chat."""
    return await s.get(ConversationState, str(key))


async def set_state(s: AsyncSession, key: ConversationKey, flow: str, data: dict[str, Any], now: datetime) -> None:
    """Store (replace) a conversation state."""
    row = await s.get(ConversationState, str(key))
    if row is None:
        s.add(ConversationState(key=str(key), flow=flow, data=data, updated_at=now))
    else:
        row.flow, row.data, row.updated_at = flow, data, now
    await s.flush()


async def add_state(s: AsyncSession, key: ConversationKey, flow: str, data: dict[str, Any],
                    now: datetime) -> ConversationState:
    """Start the state of a conversation that has none (the caller read it and found none, under its lock)."""
    row = ConversationState(key=str(key), flow=flow, data=data, updated_at=now)
    s.add(row)
    return row


async def clear_state(s: AsyncSession, key: ConversationKey) -> None:
    """Forget a conversation state."""
    await s.execute(delete(ConversationState).where(ConversationState.key == str(key)))


async def resident_key(s: AsyncSession, person_id: str, channel: str, chat_id: str) -> ConversationKey:
    """The conversation key of a person in a private chat, found from their account there (a timer or
    another person's press may need to set the state the person's own next message will read)."""
    q = select(Identity.external_id).where(Identity.person_id == person_id, Identity.channel == channel,
                                           Identity.chat_id == chat_id)
    user = (await s.execute(q.limit(1))).scalar_one_or_none()
    return ConversationKey(channel, chat_id, user or chat_id)


# ---- requests ----------------------------------------------------------------------------------------

async def next_number(s: AsyncSession, day: date) -> str:
    """The next readable request number of the day, e.g. 20261122-0007."""
    name = f"req-{day:%Y%m%d}"
    stmt = _insert(s)(Counter).values(name=name, value=1)
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={"value": Counter.value + 1})
    value = (await s.execute(stmt.returning(Counter.value))).scalar_one()
    return f"{day:%Y%m%d}-{value:04d}"


async def add_request(s: AsyncSession, **fields: Any) -> HelpRequest:
    """Insert a request."""
    req = HelpRequest(**fields)
    s.add(req)
    await s.flush()
    return req


async def get_request(s: AsyncSession, request_id: int) -> HelpRequest | None:
    """A request by id, freshly read."""
    q = select(HelpRequest).where(HelpRequest.id == request_id).execution_options(populate_existing=True)
    return (await s.execute(q)).scalar_one_or_none()


async def request_by_number(s: AsyncSession, number: str) -> HelpRequest | None:
    """A request by its readable number."""
    q = select(HelpRequest).where(HelpRequest.number == number).execution_options(populate_existing=True)
    return (await s.execute(q)).scalar_one_or_none()


@dataclass(frozen=True)
class Moved:
    """A transition that happened, with the request's claimer as it is after it."""

    volunteer_id: str | None


async def transition(s: AsyncSession, request_id: int, action: str, **values: Any) -> Moved | None:
    """One conditional write built from the flow's transition table: do `action` only if the request is
    still in a status it may start from. None if it was not (another event got there first)."""
    frm, to = TRANSITIONS[action]
    stmt = (update(HelpRequest)
            .where(HelpRequest.id == request_id, HelpRequest.status.in_(sorted(frm)))
            .values(status=to, **values)
            .returning(HelpRequest.volunteer_id)
            .execution_options(synchronize_session=False))
    row = (await s.execute(stmt)).first()
    return Moved(row[0]) if row is not None else None


async def update_request(s: AsyncSession, request_id: int, **values: Any) -> None:
    """Set fields of a request unconditionally."""
    await s.execute(update(HelpRequest).where(HelpRequest.id == request_id).values(**values)
                    .execution_options(synchronize_session=False))


async def add_history(s: AsyncSession, request_id: int, actor: str | None, action: str, now: datetime,
                      **detail: Any) -> None:
    """Append to a request's history."""
    s.add(RequestEvent(request_id=request_id, at=now, actor_id=actor, action=action, detail=detail))


async def history(s: AsyncSession, request_id: int) -> list[RequestEvent]:
    """A request's history, oldest first."""
    q = select(RequestEvent).where(RequestEvent.request_id == request_id).order_by(RequestEvent.id)
    return list((await s.execute(q)).scalars())


async def add_route(s: AsyncSession, request_id: int, team_id: str, reason: str, now: datetime) -> None:
    """Record that a request was posted to a team."""
    s.add(RequestRoute(request_id=request_id, team_id=team_id, reason=reason, at=now))
    await s.flush()


async def routed_team_ids(s: AsyncSession, request_id: int) -> list[str]:
    """The teams a request has been posted to, in order."""
    q = select(RequestRoute.team_id).where(RequestRoute.request_id == request_id).order_by(RequestRoute.id)
    return list(dict.fromkeys((await s.execute(q)).scalars()))


async def requests_of(s: AsyncSession, resident_id: str, limit: int = 10) -> list[HelpRequest]:
    """A resident's latest requests."""
    q = (select(HelpRequest).where(HelpRequest.resident_id == resident_id)
         .order_by(HelpRequest.id.desc()).limit(limit))
    return list((await s.execute(q)).scalars())


async def requests_with_status(s: AsyncSession, statuses: Iterable[str], limit: int = 30) -> list[HelpRequest]:
    """Requests in some statuses, oldest first."""
    q = select(HelpRequest).where(HelpRequest.status.in_(list(statuses))).order_by(HelpRequest.id).limit(limit)
    return list((await s.execute(q)).scalars())


async def request_counts(s: AsyncSession) -> dict[str, dict[str, int]]:
    """Number of requests by category, then by status."""
    q = select(HelpRequest.category, HelpRequest.status, func.count()).group_by(HelpRequest.category,
                                                                               HelpRequest.status)
    counts: dict[str, dict[str, int]] = {}
    for category, status, n in (await s.execute(q)).all():
        counts.setdefault(category, {})[status] = int(n)
    return counts


async def tasks_of(s: AsyncSession, volunteer_id: str) -> list[HelpRequest]:
    """A volunteer's claimed or started requests."""
    q = select(HelpRequest).where(HelpRequest.volunteer_id == volunteer_id,
                                  HelpRequest.status.in_(["claimed", "started"])).order_by(HelpRequest.id)
    return list((await s.execute(q)).scalars())


async def add_claim(s: AsyncSession, request_id: int, volunteer_id: str, now: datetime, via: str) -> None:
    """Record a claim."""
    s.add(Claim(request_id=request_id, volunteer_id=volunteer_id, claimed_at=now, via=via))


async def release_claims(s: AsyncSession, request_id: int, now: datetime) -> None:
    """Mark a request's open claims as given back."""
    await s.execute(update(Claim).where(Claim.request_id == request_id, Claim.released_at.is_(None))
                    .values(released_at=now))


async def add_rating(s: AsyncSession, request_id: int, stars: int, now: datetime) -> bool:
    """Rate a request once; False if it was rated already."""
    stmt = _insert(s)(Rating).values(request_id=request_id, stars=stars, at=now)
    return await rowcount(s, stmt.on_conflict_do_nothing(index_elements=["request_id"])) == 1


async def get_rating(s: AsyncSession, request_id: int) -> Rating | None:
    """The rating of a request."""
    return await s.get(Rating, request_id)


async def set_rating_comment(s: AsyncSession, request_id: int, comment: str) -> None:
    """Attach the resident's comment to their rating."""
    await s.execute(update(Rating).where(Rating.request_id == request_id).values(comment=comment))


async def upsert_service_record(s: AsyncSession, volunteer_id: str, request_id: int, served_on: date,
                                hours: float, points: float, now: datetime) -> None:
    """Record (or correct) the hours of one finished service."""
    row = (await s.execute(select(ServiceRecord).where(ServiceRecord.request_id == request_id))).scalar_one_or_none()
    if row is None:
        s.add(ServiceRecord(volunteer_id=volunteer_id, request_id=request_id, served_on=served_on, hours=hours,
                            points=points, created_at=now))
    else:
        row.hours, row.points = hours, points
    await s.flush()


async def volunteer_totals(s: AsyncSession, volunteer_id: str, year: int) -> tuple[float, float, float, int]:
    """(total hours, this year's hours, points, number of services)."""
    base = select(func.coalesce(func.sum(ServiceRecord.hours), 0.0), func.coalesce(func.sum(ServiceRecord.points), 0.0),
                  func.count(ServiceRecord.id)).where(ServiceRecord.volunteer_id == volunteer_id)
    total, points, count = (await s.execute(base)).one()
    yq = select(func.coalesce(func.sum(ServiceRecord.hours), 0.0)).where(
        ServiceRecord.volunteer_id == volunteer_id,
        and_(ServiceRecord.served_on >= date(year, 1, 1), ServiceRecord.served_on <= date(year, 12, 31)))
    year_hours = (await s.execute(yq)).scalar_one()
    return float(total), float(year_hours), float(points), int(count)


# ---- duty ----------------------------------------------------------------------------------------

async def set_duty(s: AsyncSession, person_id: str, on_duty: bool, until: datetime) -> None:
    """Switch a volunteer on or off duty until a time."""
    row = await s.get(DutyOverride, person_id)
    if row is None:
        s.add(DutyOverride(person_id=person_id, on_duty=on_duty, until=until))
    else:
        row.on_duty, row.until = on_duty, until
    await s.flush()


async def duty_overrides(s: AsyncSession, person_ids: Iterable[str], now: datetime) -> dict[str, bool]:
    """Overrides still in force for these people."""
    q = select(DutyOverride).where(DutyOverride.person_id.in_(list(person_ids)), DutyOverride.until > now)
    return {row.person_id: row.on_duty for row in (await s.execute(q)).scalars()}


# ---- outbox and ledger -------------------------------------------------------------------------------

async def enqueue(s: AsyncSession, now: datetime, channel: str, chat_id: str, kind: str,
                  payload: dict[str, Any], request_id: int | None = None, ledger_kind: str | None = None) -> int:
    """Add a message to the outbox; it is delivered after the transaction commits."""
    row = OutboxMessage(created_at=now, channel=channel, chat_id=chat_id, kind=kind, payload=payload,
                        request_id=request_id, ledger_kind=ledger_kind, status="pending", attempts=0,
                        next_attempt_at=now)
    s.add(row)
    await s.flush()
    return row.id


@dataclass
class NewRow:
    """An outbox row to write with an event's others (id set once written)."""

    channel: str
    chat_id: str
    kind: str
    payload: dict[str, Any]
    request_id: int | None = None
    ledger_kind: str | None = None
    id: int = 0
    leased: bool = False


async def enqueue_many(s: AsyncSession, now: datetime, rows: list[NewRow], lease_for: float = 0.0) -> list[NewRow]:
    """Write an event's outbox rows in one statement, in order. With `lease_for` > 0 the rows of chats that have
    nothing else waiting are written leased (for that many seconds of real time) to the caller, who sends them
    right after the commit; returns those rows."""
    busy: set[tuple[str, str]] = set()
    if lease_for > 0:
        chats = sorted({r.chat_id for r in rows})
        busy = {(c, chat) for c, chat in (await s.execute(_BUSY_CHATS, {"chats": chats})).all()}
    until = utcnow() + timedelta(seconds=lease_for)
    values = []
    for r in rows:
        r.leased = lease_for > 0 and (r.channel, r.chat_id) not in busy
        values.append({"created_at": now, "channel": r.channel, "chat_id": r.chat_id, "kind": r.kind,
                       "payload": r.payload, "request_id": r.request_id, "ledger_kind": r.ledger_kind,
                       "status": "pending", "attempts": 0, "next_attempt_at": now,
                       "lease_until": until if r.leased else None})
    ids = (await s.execute(_ADD_OUTBOX, values)).scalars().all()
    for r, row_id in zip(rows, ids, strict=True):
        r.id = row_id
    return [r for r in rows if r.leased]


async def add_ledger(s: AsyncSession, request_id: int, channel: str, chat_id: str, message_id: str, kind: str,
                     now: datetime, content_hash: str | None = None) -> None:
    """Remember where a copy of a request's card landed (and what it shows, when known)."""
    stmt = _insert(s)(LedgerEntry).values(request_id=request_id, channel=channel, chat_id=chat_id,
                                          message_id=message_id, kind=kind, created_at=now, content_hash=content_hash)
    await s.execute(stmt.on_conflict_do_nothing())


async def set_ledger_hash(s: AsyncSession, channel: str, chat_id: str, message_id: str, content_hash: str) -> None:
    """Remember what a recorded copy shows after an edit."""
    await s.execute(update(LedgerEntry).where(LedgerEntry.channel == channel, LedgerEntry.chat_id == chat_id,
                                              LedgerEntry.message_id == message_id)
                    .values(content_hash=content_hash))


async def ledger_for(s: AsyncSession, request_id: int, kinds: Iterable[str]) -> list[LedgerEntry]:
    """Every recorded copy of a request's messages of these kinds."""
    q = select(LedgerEntry).where(LedgerEntry.request_id == request_id, LedgerEntry.kind.in_(list(kinds)))
    return list((await s.execute(q.order_by(LedgerEntry.id))).scalars())


# ---- timers --------------------------------------------------------------------------------------------

async def add_timer(s: AsyncSession, due_at: datetime, kind: str, request_id: int | None = None,
                    **payload: Any) -> None:
    """Schedule a durable timer."""
    s.add(Timer(due_at=due_at, kind=kind, request_id=request_id, payload=payload))


async def cancel_timers(s: AsyncSession, request_id: int, kinds: Iterable[str]) -> None:
    """Cancel a request's pending timers of these kinds."""
    await s.execute(update(Timer).where(Timer.request_id == request_id, Timer.kind.in_(list(kinds)),
                                        Timer.fired_at.is_(None)).values(cancelled=True))


async def due_timer_ids(s: AsyncSession, now: datetime, limit: int = 100) -> list[int]:
    """Ids of timers that are due and neither fired nor cancelled."""
    q = (select(Timer.id).where(Timer.fired_at.is_(None), Timer.cancelled.is_(False), Timer.due_at <= now)
         .order_by(Timer.due_at, Timer.id).limit(limit))
    return list((await s.execute(q)).scalars())


async def take_timer(s: AsyncSession, timer_id: int, now: datetime) -> Timer | None:
    """Mark a due timer fired (conditional write, so it fires once across workers); None if taken."""
    taken = await rowcount(s, update(Timer).where(Timer.id == timer_id, Timer.fired_at.is_(None),
                                                  Timer.cancelled.is_(False)).values(fired_at=now))
    if taken != 1:
        return None
    return await s.get(Timer, timer_id)


# ---- config sync ------------------------------------------------------------------------------------------

async def upsert_team(s: AsyncSession, team_id: str, name: str, unit: str, level: str,
                      known: dict[str, Team] | None = None) -> None:
    """Create or update a team row (`known`: the rows already read, so none is looked up one by one)."""
    row = known.get(team_id) if known is not None else await s.get(Team, team_id)
    if row is None:
        s.add(Team(id=team_id, name=name, unit=unit, level=level))
    else:
        row.name, row.unit, row.level = name, unit, level


async def upsert_staff(s: AsyncSession, person_id: str, name: str, phone: str | None, now: datetime,
                       volunteer: bool = False, coordinator: bool = False, trained: bool = False,
                       unit: str | None = None, known: dict[str, Person] | None = None) -> None:
    """Create or update a volunteer/coordinator seeded from config (`known`: the rows already read)."""
    row = known.get(person_id) if known is not None else await s.get(Person, person_id)
    if row is None:
        row = Person(id=person_id, created_at=now)
        s.add(row)
    row.name, row.phone, row.is_volunteer, row.is_coordinator = name, phone, volunteer, coordinator
    row.trained, row.unit = trained, unit


async def set_memberships(s: AsyncSession, pairs: set[tuple[str, str]]) -> None:
    """Make team memberships exactly these (team_id, person_id) pairs."""
    await s.flush()
    await s.execute(delete(TeamMember))
    s.add_all(TeamMember(team_id=t, person_id=p) for t, p in sorted(pairs))
    await s.flush()


async def ensure_identity(s: AsyncSession, channel: str, external_id: str, person_id: str, chat_id: str,
                          name: str, known: set[tuple[str, str]] | None = None) -> None:
    """Link a platform account to a person (if not linked yet; `known`: the accounts already there)."""
    if known is not None:
        if (channel, external_id) not in known:
            known.add((channel, external_id))
            s.add(Identity(channel=channel, external_id=external_id, person_id=person_id, chat_id=chat_id,
                           display_name=name))
        return
    row = await s.get(Identity, (channel, external_id))
    if row is None:
        s.add(Identity(channel=channel, external_id=external_id, person_id=person_id, chat_id=chat_id,
                       display_name=name))
