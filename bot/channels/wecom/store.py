"""WeCom's durable bookkeeping: kf send budgets and hand-overs, sent kf messages, app cards and their
response codes. Every decision is one conditional write, so several workers agree."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import repo
from storage.models import OutboxMessage, WecomCard, WecomKfSent, WecomKfSession, WecomResponseCode
from storage.sql import _insert, rowcount

KF_WINDOW = timedelta(hours=48) - timedelta(minutes=1)  # a minute's margin for clock skew
KF_PER_MESSAGE = 5
CODE_VALID = timedelta(hours=72) - timedelta(minutes=10)


# ---- kf sessions --------------------------------------------------------------------------------

async def kf_inbound(s: AsyncSession, user: str, open_kfid: str, msgid: str, sent_at: datetime,
                     now: datetime) -> bool:
    """The resident wrote (message `msgid` at `sent_at`): the budget starts again — once per message,
    so a replayed sync never grants more."""
    if not await repo.mark_processed(s, "wecom_kf:in", msgid, now):
        return False
    ins = _insert(s)(WecomKfSession).values(external_userid=user, open_kfid=open_kfid, last_inbound_at=sent_at,
                                            sent_since_inbound=0, send_failures=0, updated_at=now)
    await s.execute(ins.on_conflict_do_nothing())
    newer = or_(WecomKfSession.last_inbound_at.is_(None), WecomKfSession.last_inbound_at < sent_at)
    await s.execute(update(WecomKfSession).where(WecomKfSession.external_userid == user, newer)
                    .values(last_inbound_at=sent_at))
    await s.execute(update(WecomKfSession).where(WecomKfSession.external_userid == user)
                    .values(sent_since_inbound=0, open_kfid=open_kfid, updated_at=now))
    return True


async def kf_reserve(s: AsyncSession, user: str, n: int, now: datetime) -> bool:
    """Take `n` sends of the budget: only within 48 h of the resident's last message, at most 5 per
    message, and never while a person serves them."""
    stmt = update(WecomKfSession).where(
        WecomKfSession.external_userid == user, WecomKfSession.servicer.is_(None),
        WecomKfSession.last_inbound_at > now - KF_WINDOW,
        WecomKfSession.sent_since_inbound + n <= KF_PER_MESSAGE,
    ).values(sent_since_inbound=WecomKfSession.sent_since_inbound + n, updated_at=now)
    return await rowcount(s, stmt) == 1


async def kf_has_held(s: AsyncSession, user: str) -> bool:
    """Whether earlier messages to the resident are held: a later one must wait behind them (order)."""
    q = select(OutboxMessage.id).where(OutboxMessage.channel == "wecom_kf", OutboxMessage.chat_id == user,
                                       OutboxMessage.status == "held").limit(1)
    return (await s.execute(q)).first() is not None


async def kf_refund(s: AsyncSession, user: str, n: int) -> None:
    """WeCom refused the send outright: it did not count."""
    await s.execute(update(WecomKfSession).where(WecomKfSession.external_userid == user,
                                                 WecomKfSession.sent_since_inbound >= n)
                    .values(sent_since_inbound=WecomKfSession.sent_since_inbound - n))


async def kf_exhaust(s: AsyncSession, user: str, failed: bool = False) -> None:
    """WeCom says the budget is used up (95001 or msg_send_fail): wait for the resident."""
    values: dict[str, Any] = {"sent_since_inbound": KF_PER_MESSAGE}
    if failed:
        values["send_failures"] = WecomKfSession.send_failures + 1
    await s.execute(update(WecomKfSession).where(WecomKfSession.external_userid == user).values(**values))


async def kf_count_failure(s: AsyncSession, user: str) -> None:
    """Count a msg_send_fail that needs no action."""
    await s.execute(update(WecomKfSession).where(WecomKfSession.external_userid == user)
                    .values(send_failures=WecomKfSession.send_failures + 1))


async def kf_session(s: AsyncSession, user: str) -> WecomKfSession | None:
    """A resident's session row."""
    return await s.get(WecomKfSession, user)


async def kf_set_servicer(s: AsyncSession, user: str, servicer: str | None, now: datetime) -> None:
    """A person serves the resident now (or nobody: the bot again)."""
    await s.execute(update(WecomKfSession).where(WecomKfSession.external_userid == user)
                    .values(servicer=servicer, updated_at=now))


async def kf_served_by(s: AsyncSession, servicer: str) -> list[str]:
    """The residents a person serves."""
    q = select(WecomKfSession.external_userid).where(WecomKfSession.servicer == servicer)
    return list((await s.execute(q)).scalars())


async def kf_record_sent(s: AsyncSession, msgid: str, user: str, payload: dict[str, Any], now: datetime) -> None:
    """Remember a sent message for three days (what a msg_send_fail would put back)."""
    s.add(WecomKfSent(msgid=msgid, external_userid=user, payload=payload, sent_at=now))
    await s.execute(delete(WecomKfSent).where(WecomKfSent.sent_at < now - timedelta(days=3)))


async def kf_sent(s: AsyncSession, msgid: str) -> WecomKfSent | None:
    """A message the bot sent, by its msgid."""
    return await s.get(WecomKfSent, msgid)


# ---- app cards ------------------------------------------------------------------------------------

async def card_get(s: AsyncSession, task_id: str) -> WecomCard | None:
    """A card the app sent."""
    return await s.get(WecomCard, task_id)


async def card_save(s: AsyncSession, task_id: str, chat_id: str, digest: str, now: datetime) -> None:
    """Record (or update) what a card shows."""
    stmt = _insert(s)(WecomCard).values(task_id=task_id, chat_id=chat_id, digest=digest, created_at=now)
    await s.execute(stmt.on_conflict_do_update(index_elements=["task_id"], set_={"digest": digest}))


async def code_add(s: AsyncSession, code: str, task_id: str, now: datetime) -> None:
    """Keep a click's response code (a retried callback brings the same code: stored once)."""
    stmt = _insert(s)(WecomResponseCode).values(code=code, task_id=task_id, created_at=now)
    await s.execute(stmt.on_conflict_do_nothing())


async def code_take(s: AsyncSession, task_id: str, now: datetime) -> str | None:
    """Spend the newest unused, unexpired response code of a card (conditional write), or None."""
    q = (select(WecomResponseCode.code).where(WecomResponseCode.task_id == task_id,
                                              WecomResponseCode.used_at.is_(None),
                                              WecomResponseCode.created_at > now - CODE_VALID)
         .order_by(WecomResponseCode.created_at.desc()).limit(5))
    for code in (await s.execute(q)).scalars():
        taken = await rowcount(s, update(WecomResponseCode).where(WecomResponseCode.code == code,
                                                                  WecomResponseCode.used_at.is_(None))
                               .values(used_at=now))
        if taken == 1:
            return str(code)
    return None


async def code_restore(s: AsyncSession, code: str) -> None:
    """A code taken for an update that WeCom did not perform (rate limited) can be used again."""
    await s.execute(update(WecomResponseCode).where(WecomResponseCode.code == code).values(used_at=None))
