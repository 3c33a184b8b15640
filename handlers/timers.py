"""Timers re-enter as events: remind the group, escalate a stuck request, ask for a rating, climb a crisis case."""
from __future__ import annotations

import logging

from flows import lifecycle as lc
from handlers import crisis, effects
from handlers.context import Ctx
from handlers.events import InboundEvent
from storage import repo

log = logging.getLogger(__name__)


async def on_timer(ctx: Ctx, ev: InboundEvent) -> None:
    """Fire one due timer (once: the conditional write in take_timer decides)."""
    timer = await repo.take_timer(ctx.s, int(ev.extra["timer_id"]), ctx.now)
    if timer is not None and timer.kind == crisis.TIMER:
        await crisis.on_timer(ctx, timer)
        return
    if timer is None or timer.request_id is None:
        return
    req = await repo.get_request(ctx.s, timer.request_id)
    if req is None:
        return
    team_id = str(timer.payload.get("team") or req.team_id)
    facts = effects.facts_of(ctx, req)
    rated = timer.kind == "rate" and await repo.get_rating(ctx.s, req.id) is not None
    step = lc.timer_step(facts, timer.kind, rated)
    if step == "remind":
        await effects.apply(ctx, req, lc.remind(facts, team_id))
        log.info("reminded team %s about request %s", team_id, req.id)
    elif step == "escalate":
        await effects.escalate(ctx, req, team_id, why="timeout")
    elif step == "rate":
        await effects.apply(ctx, req, (lc.AskRating(),))
