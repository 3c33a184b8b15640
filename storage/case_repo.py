"""Crisis cases: the case rows, their history, and the audit trail of their reveals. Like storage/repo.py, the
queries never commit."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry, CaseEvent, CrisisCase
from storage.sql import rowcount


async def add_case(s: AsyncSession, **fields: Any) -> CrisisCase:
    """Open a crisis case."""
    case = CrisisCase(**fields)
    s.add(case)
    await s.flush()
    return case


async def get_case(s: AsyncSession, case_id: int) -> CrisisCase | None:
    """A case by id, freshly read."""
    q = select(CrisisCase).where(CrisisCase.id == case_id).execution_options(populate_existing=True)
    return (await s.execute(q)).scalar_one_or_none()


async def live_case_of(s: AsyncSession, resident_id: str, statuses: Iterable[str]) -> CrisisCase | None:
    """The resident's latest case still in one of these statuses."""
    q = (select(CrisisCase).where(CrisisCase.resident_id == resident_id, CrisisCase.status.in_(list(statuses)))
         .order_by(CrisisCase.id.desc()).limit(1).execution_options(populate_existing=True))
    return (await s.execute(q)).scalar_one_or_none()


async def case_transition(s: AsyncSession, case_id: int, frm: Iterable[str], actor: str | None,
                          at_level: int | None = None, **values: Any) -> bool:
    """One conditional write: change the case only if it is still in a status of `frm`, nobody else's (its
    assignee is none or `actor`) and, with `at_level`, still at that escalation level. False if another event got
    there first."""
    cond = [CrisisCase.id == case_id, CrisisCase.status.in_(sorted(frm))]
    if actor is not None:
        cond.append((CrisisCase.assignee_id.is_(None)) | (CrisisCase.assignee_id == actor))
    if at_level is not None:
        cond.append(CrisisCase.level == at_level)
    stmt = update(CrisisCase).where(*cond).values(**values).execution_options(synchronize_session=False)
    return await rowcount(s, stmt) == 1


async def add_case_history(s: AsyncSession, case_id: int, actor: str | None, action: str, now: datetime,
                           **detail: Any) -> None:
    """Append to a case's history."""
    s.add(CaseEvent(case_id=case_id, at=now, actor_id=actor, action=action, detail=detail))
    await s.flush()


async def case_history(s: AsyncSession, case_id: int) -> list[CaseEvent]:
    """A case's history, oldest first."""
    q = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
    return list((await s.execute(q)).scalars())


async def case_audit_entries(s: AsyncSession, resident_id: str) -> list[AuditEntry]:
    """The audit trail of a resident's crisis cases: every alert, phone and words sent to the case's people."""
    q = select(AuditEntry).where(AuditEntry.subject_person_id == resident_id,
                                 AuditEntry.action.in_(("case_alert", "case_view")))
    return list((await s.execute(q.order_by(AuditEntry.id))).scalars())
