"""The resident's rights (我的数据, 导出, 删除我的数据) and the audit trail of requests. Like storage/repo.py, the
queries never commit."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.types import ConversationKey
from storage.models import (
    AuditEntry,
    ConversationState,
    CrisisCase,
    HelpRequest,
    Identity,
    OutboxMessage,
    Person,
    Rating,
    Timer,
)
from storage.retention import Transcript


async def all_requests_of(s: AsyncSession, resident_id: str) -> list[HelpRequest]:
    """Every request a person made, oldest first."""
    q = select(HelpRequest).where(HelpRequest.resident_id == resident_id).order_by(HelpRequest.id)
    return list((await s.execute(q.execution_options(populate_existing=True))).scalars())


async def ratings_of(s: AsyncSession, request_ids: Iterable[str | int]) -> dict[int, Rating]:
    """The ratings of these requests, by request id."""
    q = select(Rating).where(Rating.request_id.in_([int(i) for i in request_ids]))
    return {r.request_id: r for r in (await s.execute(q)).scalars()}


async def all_identities_of(s: AsyncSession, person_id: str) -> list[Identity]:
    """Every platform account of a person (with or without a private chat)."""
    q = select(Identity).where(Identity.person_id == person_id).order_by(Identity.channel)
    return list((await s.execute(q)).scalars())


def _chats(accounts: Iterable[Identity]) -> list[tuple[str, str]]:
    return [(i.channel, i.chat_id or i.external_id) for i in accounts]


async def transcript_count(s: AsyncSession, accounts: list[Identity],
                           transcripts: dict[str, Transcript] | None = None) -> int:
    """How many chat messages to or from these accounts are kept (outbox rows, the channels' transcripts)."""
    total = 0
    for channel, chat in _chats(accounts):
        q = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.channel == channel,
                                                                 OutboxMessage.chat_id == chat)
        total += int((await s.execute(q)).scalar_one())
        if (transcript := (transcripts or {}).get(channel)) is not None:
            q = select(func.count()).select_from(transcript.table).where(transcript.chat == chat)
            total += int((await s.execute(q)).scalar_one())
    return total


async def erase_person(s: AsyncSession, person: Person, accounts: list[Identity], keep_accounts: bool,
                       now: datetime, transcripts: dict[str, Transcript] | None = None) -> None:
    """删除我的数据: erase a person's name, phone, the address, phone and description of their requests, their
    rating comments, drafts, crisis case texts and chat transcripts. Requests, ratings (stars) and service records
    stay as rows without personal fields (anonymised statistics). Staff keep their accounts (config manages
    them)."""
    request_ids = [r.id for r in await all_requests_of(s, person.id)]
    if request_ids:
        await s.execute(update(HelpRequest).where(HelpRequest.id.in_(request_ids))
                        .values(address="", phone="", description="", chat_id="")
                        .execution_options(synchronize_session=False))
        await s.execute(update(Rating).where(Rating.request_id.in_(request_ids)).values(comment=None))
        await s.execute(update(Timer).where(Timer.request_id.in_(request_ids), Timer.kind == "rate",
                                            Timer.fired_at.is_(None)).values(cancelled=True))
    chats = _chats(accounts)
    keys = [str(ConversationKey(i.channel, i.chat_id or i.external_id, i.external_id)) for i in accounts]
    if keys:
        await s.execute(delete(ConversationState).where(ConversationState.key.in_(keys)))
    for channel, chat in chats:
        await s.execute(delete(OutboxMessage).where(OutboxMessage.channel == channel, OutboxMessage.chat_id == chat))
        if (transcript := (transcripts or {}).get(channel)) is not None:  # the channel's copies of the chat
            await s.execute(delete(transcript.table).where(transcript.chat == chat))
    await s.execute(update(CrisisCase).where(CrisisCase.resident_id == person.id)
                    .values(trigger_text="", phone=None))  # the words of a crisis case and the phone left in it
    if not keep_accounts:
        person.name, person.phone, person.station_id, person.locale = "", None, None, None
        await s.execute(delete(Identity).where(Identity.person_id == person.id))
    person.erased_at, person.privacy_accepted_at = now, None
    await s.flush()


async def audit_entries(s: AsyncSession, request_id: int, subject_id: str | None) -> list[AuditEntry]:
    """The audit trail of a request: reveals about it, and its resident's own data requests."""
    cond = AuditEntry.request_id == request_id
    if subject_id:
        cond = cond | ((AuditEntry.subject_person_id == subject_id) & AuditEntry.request_id.is_(None)
                       & AuditEntry.action.not_in(("case_alert", "case_view")))
    q = select(AuditEntry).where(cond).order_by(AuditEntry.id)
    return list((await s.execute(q)).scalars())
