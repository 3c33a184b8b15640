"""SQLAlchemy 2 models: every table wuwei keeps. Times are naive UTC."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations name constraints stably."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


Base.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Person(Base):
    """A resident, volunteer or coordinator (one person may be several)."""

    __tablename__ = "people"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str | None] = mapped_column(String(32))
    is_resident: Mapped[bool] = mapped_column(Boolean, default=False)
    is_volunteer: Mapped[bool] = mapped_column(Boolean, default=False)
    is_coordinator: Mapped[bool] = mapped_column(Boolean, default=False)
    trained: Mapped[bool] = mapped_column(Boolean, default=False)
    unit: Mapped[str | None] = mapped_column(String(64))  # a coordinator's org unit
    station_id: Mapped[str | None] = mapped_column(String(64))  # a resident's last station
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    privacy_accepted_at: Mapped[datetime | None] = mapped_column(DateTime)  # the privacy notice (migration 0006)
    erased_at: Mapped[datetime | None] = mapped_column(DateTime)  # 删除我的数据: personal fields erased


class Team(Base):
    """A volunteer team (synced from config)."""

    __tablename__ = "teams"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))


class TeamMember(Base):
    """Membership of a volunteer in a team."""

    __tablename__ = "team_members"
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), primary_key=True)


class Identity(Base):
    """Who a platform account is: (channel, external user id) → person, and their private chat."""

    __tablename__ = "identities"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    chat_id: Mapped[str | None] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(100))


class GroupBinding(Base):
    """A group chat on a channel bound to a team."""

    __tablename__ = "group_bindings"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), index=True)


class HelpRequest(Base):
    """One resident's request for help (点单), through its whole lifecycle."""

    __tablename__ = "requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    category: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64))
    station_id: Mapped[str] = mapped_column(String(64))
    for_whom: Mapped[str] = mapped_column(String(16))
    when_kind: Mapped[str] = mapped_column(String(16))
    when_at: Mapped[datetime | None] = mapped_column(DateTime)
    when_text: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    volunteer_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"))
    hours: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)


class RequestRoute(Base):
    """A team a request was posted to (dispatch, escalation, manual assignment)."""

    __tablename__ = "request_routes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    reason: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime)


class RequestEvent(Base):
    """One entry of a request's history: who did what, when."""

    __tablename__ = "request_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Claim(Base):
    """A volunteer's claim of a request; released_at is set when given back."""

    __tablename__ = "claims"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    volunteer_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    claimed_at: Mapped[datetime] = mapped_column(DateTime)
    released_at: Mapped[datetime | None] = mapped_column(DateTime)
    via: Mapped[str] = mapped_column(String(16), default="press")


class Rating(Base):
    """The resident's rating of a finished request (评单); one per request."""

    __tablename__ = "ratings"
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), primary_key=True)
    stars: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime)


class CrisisCase(Base):
    """A person at risk (self-harm words) or in a medical emergency: tracked from the alert until closed."""

    __tablename__ = "crisis_cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # self_harm | medical
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | acknowledged | contacted | closed
    resident_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))  # the resident's chat: where a counsellor's words go
    chat_id: Mapped[str] = mapped_column(String(128))
    station_id: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    trigger_text: Mapped[str] = mapped_column(Text)  # psychological content: only to the case's people
    level: Mapped[int] = mapped_column(Integer, default=0)  # how far up its chain it has been alerted
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"))
    outcome: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)


class CaseEvent(Base):
    """One entry of a crisis case's history: who did what, when (alerted, acknowledged, handed on …)."""

    __tablename__ = "crisis_case_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("crisis_cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ServiceRecord(Base):
    """Recorded volunteer service (志愿服务时长) for one finished request (奖单)."""

    __tablename__ = "service_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    volunteer_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), unique=True)
    served_on: Mapped[date] = mapped_column(Date)
    hours: Mapped[float] = mapped_column(Float)
    points: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class DutyOverride(Base):
    """A volunteer switched on (值班) or off (下班) duty until a time."""

    __tablename__ = "duty_overrides"
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), primary_key=True)
    on_duty: Mapped[bool] = mapped_column(Boolean)
    until: Mapped[datetime] = mapped_column(DateTime)


class ConversationState(Base):
    """Where a person is in a conversation (intake form, hours, rating comment)."""

    __tablename__ = "conversation_states"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    flow: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ProcessedEvent(Base):
    """Inbound platform event ids already handled (dedupe)."""

    __tablename__ = "processed_events"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class EventFailure(Base):
    """How often handling an inbound event has failed: it is retried by its platform until it succeeds or
    gives up after a bounded number of tries (a poison event must not be retried forever)."""

    __tablename__ = "event_failures"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class InboxEvent(Base):
    """An inbound update taken on (the platform was answered 2xx) but not yet handled: written before the
    answer, deleted once handled. The worker that took it holds a short lease on it; when the worker dies
    another takes the row over (bot/inbox.py)."""

    __tablename__ = "inbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(200))
    lane: Mapped[str] = mapped_column(String(300))  # one conversation's events are handled in order
    payload: Mapped[str] = mapped_column(Text)  # the update as the platform sent it
    received_at: Mapped[datetime] = mapped_column(DateTime)
    holder: Mapped[str] = mapped_column(String(64))  # the worker handling it (alive while its lease is)

    __table_args__ = (UniqueConstraint("channel", "event_id", name="uq_inbox_event"),
                      Index("ix_inbox_holder", "holder"))


class OutboxMessage(Base):
    """A message to deliver, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(2000))  # WeCom app fan-out: "u1|u2|…" (migration 0003)
    kind: Mapped[str] = mapped_column(String(16))  # message | card | card_refresh
    request_id: Mapped[int | None] = mapped_column(Integer)
    ledger_kind: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)


class LedgerEntry(Base):
    """Where a copy of a request's card (or detail message) landed, so every copy can be re-rendered."""

    __tablename__ = "message_ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(2000))  # WeCom app fan-out: "u1|u2|…" (migration 0003)
    message_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # group_card | nudge | detail
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # what this copy shows now (a hash of its rendered text and buttons): an unchanged copy is never re-edited
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (UniqueConstraint("channel", "chat_id", "message_id", name="uq_ledger_message"),)


class Timer(Base):
    """A durable timer: fires once, as an event, at or after due_at."""

    __tablename__ = "timers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    due_at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[int | None] = mapped_column(Integer, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fired_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_timers_pending", "fired_at", "cancelled", "due_at"),)


class Counter(Base):
    """Named counters, e.g. the per-day request sequence."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class SimMessage(Base):
    """The simulator's chat log: what its fake phones show (kept so it survives restarts)."""

    __tablename__ = "sim_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128), index=True)
    sender: Mapped[str] = mapped_column(String(64))  # "bot" or the user id
    text: Mapped[str] = mapped_column(Text)
    buttons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # the outbox row a bot message came from: a row sent again after a crash is not shown twice (migration 0005)
    delivery_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # a file: filename, content


class AuditEntry(Base):
    """One reveal of personal data (who saw or got what about whom, when, why): the audit trail (0006)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor_id: Mapped[str | None] = mapped_column(String(64))  # who saw it (None: the system)
    action: Mapped[str] = mapped_column(String(32))  # e.g. claimer_details, export, erase
    request_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject_person_id: Mapped[str | None] = mapped_column(String(64), index=True)  # whose data
    reason: Mapped[str] = mapped_column(String(200))


class ChannelState(Base):
    """Small durable values a channel keeps: a polling offset, a sync cursor, a cached token."""

    __tablename__ = "channel_state"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Lease(Base):
    """A named lease held by one worker until `until` (leader election for single connections)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(DateTime)


class LinkCode(Base):
    """A one-time code a coordinator issues so a platform account becomes a known volunteer/coordinator."""

    __tablename__ = "link_codes"
    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    issued_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


# ---- WeCom channels (owned by the wecom engineer; migration 0003) ------------------------------------

class WecomKfSession(Base):
    """A resident's 微信客服 session: the 48 h / 5-messages-per-message budget and who serves them."""

    __tablename__ = "wecom_kf_sessions"
    external_userid: Mapped[str] = mapped_column(String(128), primary_key=True)
    open_kfid: Mapped[str] = mapped_column(String(64))
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime)  # the resident's last message
    sent_since_inbound: Mapped[int] = mapped_column(Integer, default=0)
    servicer: Mapped[str | None] = mapped_column(String(64))  # a person serves (state 3): the bot is silent
    send_failures: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class WecomKfSent(Base):
    """What the bot sent a resident by kf (kept 3 days), so a msg_send_fail can put it back on hold."""

    __tablename__ = "wecom_kf_sent"
    msgid: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sent_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class WecomCard(Base):
    """An app template card (task_id): who got it and what it shows now, so unchanged edits are skipped."""

    __tablename__ = "wecom_cards"
    task_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    chat_id: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class WecomResponseCode(Base):
    """A card click's ResponseCode: single use, valid 72 h, spent to update every copy of the card."""

    __tablename__ = "wecom_response_codes"
    code: Mapped[str] = mapped_column(String(128), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
