"""The audit trail: every reveal of a person's data (a claimer's details, a case alert, an export, a data
request) is recorded, in the same transaction as the reveal, with who, what, when and why."""
from __future__ import annotations

from handlers.context import Ctx
from storage.models import AuditEntry


async def record(ctx: Ctx, actor_id: str | None, action: str, request_id: int | None,
                 subject_person_id: str | None, reason: str) -> None:
    """Record one reveal: `actor_id` saw or got `action` (claimer_details, case_alert, data_export …) about
    `subject_person_id` (and request `request_id`, if any) because of `reason` (a short code or words)."""
    ctx.s.add(AuditEntry(at=ctx.now, actor_id=actor_id, action=action[:32], request_id=request_id,
                         subject_person_id=subject_person_id, reason=reason[:200]))
