"""The one interpreter of the request life's effects (flows/lifecycle.py): applies a step's effects in order,
inside the event's one transaction. A step's Transition is a conditional write; when another event got there
first, none of the step's other effects happen."""
from __future__ import annotations

import logging
from datetime import timedelta

from flows import lifecycle as lc
from flows import requests as rq
from flows.i18n import t
from flows.types import Message
from handlers import audit, duty
from handlers.context import Ctx, MessageBuilder
from handlers.events import NO_TRAITS
from handlers.views import view_of
from storage import repo
from storage.models import GroupBinding, HelpRequest, Person

log = logging.getLogger(__name__)


def facts_of(ctx: Ctx, req: HelpRequest) -> lc.Facts:
    """What the pure steps may know about a request."""
    cat = ctx.catalog.category(req.category)
    svc = cat.service(req.service) if cat else None
    station = ctx.catalog.station(req.station_id)
    return lc.Facts(id=req.id, number=req.number, status=req.status, team_id=req.team_id,
                    station_id=req.station_id, resident_id=req.resident_id, resident_locale=req.locale,
                    volunteer_id=req.volunteer_id, claimed_at=req.claimed_at, started_at=req.started_at,
                    escalation_level=req.escalation_level,
                    service=svc.name(ctx.cfg.locale) if svc else req.service,
                    community=station.community if station else req.station_id)


def settings_of(ctx: Ctx) -> lc.Settings:
    """The config the steps need."""
    timings = ctx.cfg.timings
    return lc.Settings(remind_after_minutes=timings.remind_after_minutes,
                       escalate_after_minutes=timings.escalate_after_minutes,
                       rating_after_minutes=timings.rating_after_minutes, hours_max=timings.hours_max,
                       points_per_hour=ctx.cfg.recognition.points_per_hour)


async def apply(ctx: Ctx, req: HelpRequest, step: lc.Step) -> bool:
    """Apply a step's effects in order; False if its gate (a transition, a first rating) lost to another event:
    then none of the effects after the gate were applied (a gate is always a step's first effect)."""
    moved: repo.Moved | None = None
    for effect in step:
        if isinstance(effect, lc.Transition):
            moved = await repo.transition(ctx.s, req.id, effect.action, **effect.values)
            if moved is None:
                return False
            req.status = rq.TRANSITIONS[effect.action][1]
            for name, value in effect.values.items():
                setattr(req, name, value)
        elif isinstance(effect, lc.AddRating):
            if not await repo.add_rating(ctx.s, req.id, effect.stars, ctx.now):
                return False
        else:
            await _apply_one(ctx, req, effect, moved)
    return True


async def _apply_one(ctx: Ctx, req: HelpRequest, e: lc.Effect, moved: repo.Moved | None) -> None:  # noqa: C901
    if isinstance(e, lc.History):
        await repo.add_history(ctx.s, req.id, e.actor_id, e.action, ctx.now, **e.detail)
    elif isinstance(e, lc.Refresh):
        await ctx.refresh(req.id)
    elif isinstance(e, lc.AddClaim):
        await repo.add_claim(ctx.s, req.id, e.volunteer_id, ctx.now, e.via)
    elif isinstance(e, lc.ReleaseClaims):
        await repo.release_claims(ctx.s, req.id, ctx.now)
    elif isinstance(e, lc.PostDetail):
        person = await repo.get_person(ctx.s, e.person_id)
        if person is None or await ctx.post_to(person, req.id, "detail") == 0:
            log.warning("request %s: its claimer has no private chat for the details", req.id)
        else:
            await audit.record(ctx, person.id, "claimer_details", req.id, req.resident_id, e.reason)
    elif isinstance(e, lc.TellResident):
        await ctx.say_to_resident(req, Message(t(req.locale, e.key, **e.params)))
    elif isinstance(e, lc.TellClaimer):
        claimer = moved.volunteer_id if moved is not None else req.volunteer_id
        if claimer and (person := await repo.get_person(ctx.s, claimer)):
            await ctx.say_to(person, lambda loc: Message(t(loc, e.key, **e.params)))
    elif isinstance(e, lc.AlertCoordinators):
        await notify_coordinators(ctx, lambda loc: Message(t(loc, e.key, **e.params)), req.station_id)
    elif isinstance(e, lc.Dispatch):
        await dispatch(ctx, req, e.team_id, e.reason)
    elif isinstance(e, lc.Nudge):
        people, bindings = await audience(ctx, req, e.team_id)
        await nudge(ctx, req.id, e.team_id, [p for p in people if p.id != e.except_id], bindings)
        await schedule_waiting_timers(ctx, req.id, e.team_id)
    elif isinstance(e, lc.Remind):
        people, bindings = await audience(ctx, req, e.team_id)
        await ctx.post_to_all(people, req.id, "reminder")
        for binding in bindings:
            await ctx.post(binding.channel, binding.chat_id, req.id, "reminder")
    elif isinstance(e, lc.CancelTimers):
        await repo.cancel_timers(ctx.s, req.id, e.kinds)
    elif isinstance(e, lc.AddTimer):
        await repo.add_timer(ctx.s, ctx.now + timedelta(minutes=e.after_minutes), e.kind, req.id, **e.payload)
    elif isinstance(e, lc.AddComment):
        await repo.set_rating_comment(ctx.s, req.id, e.text)
    elif isinstance(e, lc.RecordHours):
        served_on = ctx.local(req.started_at or req.claimed_at or ctx.now).date()
        await repo.upsert_service_record(ctx.s, e.volunteer_id, req.id, served_on, e.hours, e.points, ctx.now)
        await repo.update_request(ctx.s, req.id, hours=e.hours)
        req.hours = e.hours
    elif isinstance(e, lc.AskHours):
        volunteer = await repo.get_person(ctx.s, e.volunteer_id)
        if volunteer is not None:
            view = await view_of(ctx.s, ctx.cfg, req, ctx.locale_of(volunteer))
            await ctx.say_to(volunteer, lambda loc: rq.hours_prompt(view, e.hours, loc))
    elif isinstance(e, lc.AskRating):
        await ask_rating(ctx, req)
    else:  # pragma: no cover - every effect kind is handled above
        raise TypeError(f"unknown effect {e!r}")


# ---- what the effects do in the world -------------------------------------------------------------------

def broadcasts(ctx: Ctx, req: HelpRequest) -> bool:
    """Whether the request's category is posted as a card in group chats (`broadcast` in config; by default
    not for sensitive categories: psychological support goes 1:1 to the on-duty counsellors)."""
    cat = ctx.catalog.category(req.category)
    return cat is None or cat.broadcast


def counsellors_only(ctx: Ctx, req: HelpRequest) -> bool:
    """Whether only vetted counsellors (the `counsellor` qualification) may hear of and take the request."""
    cat = ctx.catalog.category(req.category)
    return cat is not None and (cat.sensitive or not cat.broadcast)


async def audience(ctx: Ctx, req: HelpRequest, team_id: str) -> tuple[list[Person], list[GroupBinding]]:
    """Who hears of an open request in a team: its on-duty members (the counsellors among them alone, for
    psychological support) and, where the category is broadcast, its group chats (cards without content)."""
    on = await duty.on_duty(ctx, team_id)
    if counsellors_only(ctx, req):
        counsellors = ctx.cfg.counsellor_ids()
        on = [p for p in on if p.id in counsellors]
    return on, await repo.group_bindings(ctx.s, team_id) if broadcasts(ctx, req) else []


async def dispatch(ctx: Ctx, req: HelpRequest, team_id: str, reason: str) -> None:
    """Post the card in the team's groups, nudge who is on duty, set the timers; escalate at once if
    nobody is on duty. A category that is not broadcast goes to the on-duty counsellors alone, privately."""
    await repo.add_route(ctx.s, req.id, team_id, reason, ctx.now)
    if reason != "dispatch":
        await repo.add_history(ctx.s, req.id, None, reason, ctx.now, team=team_id)
    on, bindings = await audience(ctx, req, team_id)
    for binding in bindings:
        await ctx.post(binding.channel, binding.chat_id, req.id, "group_card")
    await nudge(ctx, req.id, team_id, on, bindings)
    await schedule_waiting_timers(ctx, req.id, team_id)
    if not on:
        await escalate(ctx, req, team_id, why="nobody_on_duty")


async def escalate(ctx: Ctx, req: HelpRequest, from_team: str, why: str) -> None:
    """Pass an open request to the parent level's team, or tell the coordinators it is stuck at the top."""
    team = ctx.cfg.team(from_team)
    parent_unit = ctx.cfg.parent_unit(team.unit) if team else None
    parent = ctx.cfg.route(parent_unit, req.category, req.service) if parent_unit else None
    if parent is not None and parent.id in await repo.routed_team_ids(ctx.s, req.id):
        parent = None
    step = lc.escalate(facts_of(ctx, req), why, from_team, team.name if team else from_team,
                       (parent.id, parent.name) if parent else None)
    await apply(ctx, req, step)


async def nudge(ctx: Ctx, req_id: int, team_id: str, people: list[Person], bindings: list[GroupBinding]) -> None:
    """Tell on-duty volunteers privately about an open request. Where the team's card in a group stands for
    the private cards of another channel (a channel trait), those are not sent (unless the team keeps them)."""
    skip = set()
    for binding in bindings:
        traits = ctx.traits.get(binding.channel, NO_TRAITS)
        if traits.replaces_private and team_id not in traits.keep_private_for:
            skip.add(traits.replaces_private)
    await ctx.post_to_all(people, req_id, "nudge", skip_channels=frozenset(skip))


async def schedule_waiting_timers(ctx: Ctx, req_id: int, team_id: str) -> None:
    """(Re)start the reminder and escalation clocks of an open request."""
    timings = ctx.cfg.timings
    await repo.cancel_timers(ctx.s, req_id, lc.WAITING_TIMERS)
    await repo.add_timer(ctx.s, ctx.now + timedelta(minutes=timings.remind_after_minutes), "remind", req_id,
                         team=team_id)
    await repo.add_timer(ctx.s, ctx.now + timedelta(minutes=timings.escalate_after_minutes), "escalate",
                         req_id, team=team_id)


async def notify_coordinators(ctx: Ctx, build: MessageBuilder, station_id: str | None = None) -> None:
    """Tell the coordinators in charge of a station (its own, its institute's, the center's); all of
    them when none is configured along that chain or no station is given."""
    everyone = await repo.coordinators(ctx.s)
    chain: set[str] = set()
    unit = station_id
    while unit is not None:
        chain.add(unit)
        unit = ctx.cfg.parent_unit(unit)
    in_charge = [p for p in everyone if p.unit in chain]
    for person in in_charge or everyone:
        await ctx.say_to(person, build)


async def ask_rating(ctx: Ctx, req: HelpRequest) -> None:
    """Ask the resident to rate a finished request (and remember, in their conversation, that we wait)."""
    view = await view_of(ctx.s, ctx.cfg, req, req.locale)
    await ctx.say_to_resident(req, rq.rating_prompt(view, req.locale))
    key = await repo.resident_key(ctx.s, req.resident_id, req.channel, req.chat_id)
    if await repo.get_state(ctx.s, key) is None:
        await repo.set_state(ctx.s, key, "rating", {"request_id": req.id}, ctx.now)
