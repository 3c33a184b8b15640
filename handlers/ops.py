"""Request operations shared by presses, commands and timers: submit, then each step of the request's life
as a pure step of flows/lifecycle.py applied by handlers/effects.py."""
from __future__ import annotations

import logging
from datetime import datetime

from flows import lifecycle as lc
from flows import requests as rq
from flows.i18n import t
from flows.types import Draft, Message
from handlers import duty, effects
from handlers.context import Ctx
from handlers.events import NO_TRAITS
from storage import repo
from storage.models import GroupBinding, HelpRequest, Person

log = logging.getLogger(__name__)


async def submit(ctx: Ctx, resident: Person, channel: str, chat_id: str, draft: Draft) -> HelpRequest:
    """Create a request from a confirmed form, route it and tell the resident what happens next."""
    team = ctx.cfg.route(draft.station or "", draft.category or "", draft.service)
    assert team is not None, "config validation guarantees every station/category is routable"
    when_at = ctx.to_utc(datetime.fromisoformat(draft.when_at)) if draft.when_at else None
    number = await repo.next_number(ctx.s, ctx.local().date())
    req = await repo.add_request(
        ctx.s, number=number, resident_id=resident.id, channel=channel, chat_id=chat_id,
        locale=ctx.locale_of(resident), category=draft.category, service=draft.service,
        station_id=draft.station, for_whom=draft.for_whom, when_kind=draft.when_kind, when_at=when_at,
        when_text=draft.when_text, address=draft.address, phone=draft.phone, description=draft.description,
        urgent=draft.urgent, status=rq.OPEN, team_id=team.id, escalation_level=0, created_at=ctx.now)
    resident.station_id = draft.station
    if not resident.phone:
        resident.phone = draft.phone
    await repo.add_history(ctx.s, req.id, resident.id, "created", ctx.now, team=team.id)
    loc = req.locale
    sensitive = bool((cat := ctx.catalog.category(req.category)) and cat.sensitive)
    key = "intake.submitted_psych" if sensitive else "intake.submitted"
    await ctx.say_to_resident(req, Message(t(loc, key, number=number, team=team.name)))
    await effects.dispatch(ctx, req, team.id, "dispatch")
    return req


async def card_undeliverable(ctx: Ctx, req_id: int, ledger_kind: str, channel: str, chat_id: str) -> None:
    """A group card could not be posted for good (the bot was removed from the group, a group robot was
    refused): the coordinators are told which group to check; where that group's card stood for private
    cards on another channel (a channel trait), the on-duty members get those after all."""
    req = await repo.get_request(ctx.s, req_id)
    if ledger_kind != "group_card" or req is None or req.status != rq.OPEN:
        return
    binding = await ctx.s.get(GroupBinding, (channel, chat_id))
    team_id = binding.team_id if binding else req.team_id
    team = ctx.cfg.team(team_id)
    traits = ctx.traits.get(channel, NO_TRAITS)
    key = traits.card_failed_key
    if traits.replaces_private and team_id not in traits.keep_private_for:  # a kept team had them already
        on = await duty.on_duty(ctx, team_id)
        others = {i.channel for i in await repo.identities_of(ctx.s, [p.id for p in on])} - {traits.replaces_private}
        await ctx.post_to_all(on, req.id, "nudge", skip_channels=frozenset(others))
    await effects.notify_coordinators(ctx, lambda loc: Message(t(loc, key, number=req.number, channel=channel,
                                      team=team.name if team else team_id)), req.station_id)


async def can_claim(ctx: Ctx, req: HelpRequest, person: Person | None) -> str | None:
    """Why this person may not claim the request (a catalog key), or None if they may."""
    if person is None:
        return "claim.not_volunteer"
    teams = await repo.team_ids_of(ctx.s, person.id) if person.is_volunteer else set()
    in_routed = bool(teams & set(await repo.routed_team_ids(ctx.s, req.id)))
    why = lc.claim_refusal(person.is_volunteer, in_routed, person.trained)
    if why is None and effects.counsellors_only(ctx, req) and person.id not in ctx.cfg.counsellor_ids():
        return "claim.not_counsellor"  # psychological requests: vetted counsellors only
    return why


async def claim(ctx: Ctx, req: HelpRequest, volunteer: Person, via: str, actor: str) -> bool:
    """Give the request to a volunteer if it is still open (one conditional write). True if it was."""
    step = lc.claim(effects.facts_of(ctx, req), volunteer.id, volunteer.name, via, actor, ctx.now)
    return await effects.apply(ctx, req, step)


async def release(ctx: Ctx, req: HelpRequest, volunteer: Person) -> bool:
    """The claimer gives the request back: it is open to everyone again."""
    return await effects.apply(ctx, req, lc.release(effects.facts_of(ctx, req), volunteer.id))


async def start(ctx: Ctx, req: HelpRequest, volunteer: Person) -> bool:
    """The claimer sets off (出发)."""
    return await effects.apply(ctx, req, lc.start(effects.facts_of(ctx, req), volunteer.id, volunteer.name, ctx.now))


async def finish(ctx: Ctx, req: HelpRequest, volunteer: Person) -> bool:
    """Service done: record hours (to be confirmed), ask the resident for a rating."""
    step = lc.finish(effects.facts_of(ctx, req), volunteer.id, ctx.now, effects.settings_of(ctx))
    return await effects.apply(ctx, req, step)


async def cancel(ctx: Ctx, req: HelpRequest, actor: Person, erased: bool = False) -> bool:
    """The resident cancels an open or claimed request (with `erased`, one under way too); the claimer is told."""
    return await effects.apply(ctx, req, lc.cancel(effects.facts_of(ctx, req), actor.id, ctx.now, erased))
