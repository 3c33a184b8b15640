"""Timers re-enter as events: remind the group, escalate a stuck request, ask for a rating."""
from __future__ import annotations

import logging

from flows import requests as rq
from handlers import duty, ops
from handlers.context import Ctx
from handlers.events import InboundEvent
from storage import repo
from storage.models import HelpRequest, Timer

log = logging.getLogger(__name__)


async def on_timer(ctx: Ctx, ev: InboundEvent) -> None:
    """Fire one due timer (once: the conditional write in take_timer decides)."""
    timer = await repo.take_timer(ctx.s, int(ev.extra["timer_id"]), ctx.now)
    if timer is None or timer.request_id is None:
        return
    req = await repo.get_request(ctx.s, timer.request_id)
    if req is None:
        return
    if timer.kind == "remind" and req.status == rq.OPEN:
        await _remind(ctx, req, timer)
    elif timer.kind == "escalate" and req.status == rq.OPEN:
        await ops.escalate(ctx, req, str(timer.payload.get("team") or req.team_id), why="timeout")
    elif timer.kind == "rate" and req.status == rq.FINISHED and await repo.get_rating(ctx.s, req.id) is None:
        await ops.ask_rating(ctx, req)


async def _remind(ctx: Ctx, req: HelpRequest, timer: Timer) -> None:
    """Remind on-duty volunteers first, then the group."""
    team_id = str(timer.payload.get("team") or req.team_id)
    await repo.add_history(ctx.s, req.id, None, "reminded", ctx.now, team=team_id)
    await ctx.post_to_all(await duty.on_duty(ctx, team_id), req.id, "reminder")
    for binding in await repo.group_bindings(ctx.s, team_id):
        await ctx.post(binding.channel, binding.chat_id, req.id, "reminder")
    log.info("reminded team %s about request %s", team_id, req.id)


