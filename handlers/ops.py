"""Request operations shared by presses, commands and timers: submit, dispatch, claim, serve, close."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flows import requests as rq
from flows.i18n import t
from flows.types import Draft, Message
from handlers import duty
from handlers.context import Ctx, MessageBuilder
from handlers.views import view_of
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
    await dispatch(ctx, req, team.id, "dispatch")
    return req


async def dispatch(ctx: Ctx, req: HelpRequest, team_id: str, reason: str) -> None:
    """Post the card in the team's groups, nudge who is on duty, set the timers; escalate at once if
    nobody is on duty."""
    await repo.add_route(ctx.s, req.id, team_id, reason, ctx.now)
    if reason != "dispatch":
        await repo.add_history(ctx.s, req.id, None, reason, ctx.now, team=team_id)
    bindings = await repo.group_bindings(ctx.s, team_id)
    for binding in bindings:
        await ctx.post(binding.channel, binding.chat_id, req.id, "group_card")
    on = await duty.on_duty(ctx, team_id)
    await nudge(ctx, req.id, team_id, on, bindings)
    await schedule_waiting_timers(ctx, req.id, team_id)
    if not on:
        await escalate(ctx, req, team_id, why="nobody_on_duty")


async def nudge(ctx: Ctx, req_id: int, team_id: str, people: list[Person], bindings: list[GroupBinding]) -> None:
    """Tell on-duty volunteers privately about an open request. A team whose WeCom group has a working
    smart robot gets the card there instead of 1:1 WeCom app cards (unless config says to fall back)."""
    aibot = ctx.cfg.channels.wecom.aibot
    in_wecom_group = aibot.enabled and any(b.channel == "wecom_bot" for b in bindings)
    skip = frozenset({"wecom"}) if in_wecom_group and team_id not in aibot.fallback_teams else frozenset()
    await ctx.post_to_all(people, req_id, "nudge", skip_channels=skip)


async def card_undeliverable(ctx: Ctx, req_id: int, ledger_kind: str, channel: str, chat_id: str) -> None:
    """A group card could not be posted for good (the bot was removed from the group, the WeCom robot was
    refused): the coordinators are told which group to check; for the WeCom robot the on-duty members
    also get the WeCom app cards nudge() held back for that group."""
    req = await repo.get_request(ctx.s, req_id)
    if ledger_kind != "group_card" or req is None or req.status != rq.OPEN:
        return
    binding = await ctx.s.get(GroupBinding, (channel, chat_id))
    team_id = binding.team_id if binding else req.team_id
    team = ctx.cfg.team(team_id)
    key = "coord.group_card_failed"
    if channel == "wecom_bot":
        key = "wecom_bot.card_failed"
        if team_id not in ctx.cfg.channels.wecom.aibot.fallback_teams:  # a fallback team had its app cards
            on = await duty.on_duty(ctx, team_id)
            others = {i.channel for i in await repo.identities_of(ctx.s, [p.id for p in on])} - {"wecom"}
            await ctx.post_to_all(on, req.id, "nudge", skip_channels=frozenset(others))
    await notify_coordinators(ctx, lambda loc: Message(t(loc, key, number=req.number, channel=channel,
                              team=team.name if team else team_id)), req.station_id)


async def schedule_waiting_timers(ctx: Ctx, req_id: int, team_id: str) -> None:
    """(Re)start the reminder and escalation clocks of an open request."""
    timings = ctx.cfg.timings
    await repo.cancel_timers(ctx.s, req_id, ["remind", "escalate"])
    await repo.add_timer(ctx.s, ctx.now + timedelta(minutes=timings.remind_after_minutes), "remind", req_id,
                         team=team_id)
    await repo.add_timer(ctx.s, ctx.now + timedelta(minutes=timings.escalate_after_minutes), "escalate",
                         req_id, team=team_id)


async def escalate(ctx: Ctx, req: HelpRequest, from_team: str, why: str) -> None:
    """Post to the parent level's team and tell the coordinators."""
    team = ctx.cfg.team(from_team)
    parent_unit = ctx.cfg.parent_unit(team.unit) if team else None
    parent = ctx.cfg.route(parent_unit, req.category, req.service) if parent_unit else None
    routed = await repo.routed_team_ids(ctx.s, req.id)
    view = await view_of(ctx.s, ctx.cfg, req, ctx.cfg.locale)
    if parent is not None and parent.id not in routed:
        # conditional: a claim that got there first (another worker, a moment ago) keeps the request
        if not await repo.transition(ctx.s, req.id, "escalate", team_id=parent.id,
                                     escalation_level=req.escalation_level + 1):
            return
        req.team_id, req.escalation_level = parent.id, req.escalation_level + 1
        await notify_coordinators(ctx, lambda loc: Message(t(loc, f"coord.escalated_{why}", number=req.number,
                                  service=view.service, community=view.community, team=parent.name,
                                  from_team=team.name if team else from_team)), req.station_id)
        await ctx.refresh(req.id)
        await dispatch(ctx, req, parent.id, "escalate")
    elif await repo.transition(ctx.s, req.id, "escalate"):  # still open (and held until we commit)
        await repo.add_history(ctx.s, req.id, None, "stuck", ctx.now, why=why)
        await notify_coordinators(ctx, lambda loc: Message(t(loc, f"coord.stuck_{why}", number=req.number,
                                  service=view.service, community=view.community)), req.station_id)


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


async def can_claim(ctx: Ctx, req: HelpRequest, person: Person | None) -> str | None:
    """Why this person may not claim the request (a catalog key), or None if they may."""
    if person is None or not person.is_volunteer:
        return "claim.not_volunteer"
    teams = await repo.team_ids_of(ctx.s, person.id)
    if not teams & set(await repo.routed_team_ids(ctx.s, req.id)):
        return "claim.not_in_team"
    if not person.trained:
        return "claim.not_trained"
    return None


async def claim(ctx: Ctx, req: HelpRequest, volunteer: Person, via: str, actor: str) -> bool:
    """Give the request to a volunteer if it is still open (one conditional write). True if it was."""
    won = await repo.transition(ctx.s, req.id, "claim" if via == "press" else "assign",
                                volunteer_id=volunteer.id, claimed_at=ctx.now)
    if not won:
        return False
    req = await repo.get_request(ctx.s, req.id) or req
    await repo.add_claim(ctx.s, req.id, volunteer.id, ctx.now, via)
    await repo.add_history(ctx.s, req.id, actor, "claimed" if via == "press" else "assigned", ctx.now,
                           volunteer=volunteer.id)
    await repo.cancel_timers(ctx.s, req.id, ["remind", "escalate"])
    await ctx.refresh(req.id)
    if await ctx.post_to(volunteer, req.id, "detail") == 0:
        log.warning("volunteer %s claimed request %s but has no private chat", volunteer.id, req.id)
    await ctx.say_to_resident(req, Message(t(req.locale, "resident.claimed", number=req.number,
                                             name=volunteer.name)))
    return True


async def release(ctx: Ctx, req: HelpRequest, volunteer: Person) -> bool:
    """The claimer gives the request back: it is open to everyone again."""
    if not await repo.transition(ctx.s, req.id, "release", volunteer_id=None, claimed_at=None, started_at=None):
        return False
    await repo.release_claims(ctx.s, req.id, ctx.now)
    await repo.add_history(ctx.s, req.id, volunteer.id, "released", ctx.now)
    await ctx.refresh(req.id)
    await ctx.say_to_resident(req, Message(t(req.locale, "resident.released", number=req.number)))
    others = [p for p in await duty.on_duty(ctx, req.team_id) if p.id != volunteer.id]
    await nudge(ctx, req.id, req.team_id, others, await repo.group_bindings(ctx.s, req.team_id))
    await schedule_waiting_timers(ctx, req.id, req.team_id)
    return True


async def start(ctx: Ctx, req: HelpRequest, volunteer: Person) -> bool:
    """The claimer sets off (出发)."""
    if not await repo.transition(ctx.s, req.id, "start", started_at=ctx.now):
        return False
    await repo.add_history(ctx.s, req.id, volunteer.id, "started", ctx.now)
    await ctx.refresh(req.id)
    await ctx.say_to_resident(req, Message(t(req.locale, "resident.started", number=req.number,
                                             name=volunteer.name)))
    return True


def default_hours(ctx: Ctx, req: HelpRequest) -> float:
    """Hours from start (or claim) to now, rounded to half hours, within sane bounds."""
    begin = req.started_at or req.claimed_at or ctx.now
    hours = rq.half_hours((ctx.now - begin).total_seconds() / 3600)
    return min(max(hours, 0.5), ctx.cfg.timings.hours_max)


async def finish(ctx: Ctx, req: HelpRequest, volunteer: Person) -> bool:
    """Service done: record hours (to be confirmed), ask the resident for a rating."""
    hours = default_hours(ctx, req)
    if not await repo.transition(ctx.s, req.id, "finish", finished_at=ctx.now,
                                 hours=hours):
        return False
    req = await repo.get_request(ctx.s, req.id) or req
    await record_hours(ctx, req, volunteer, hours)
    await repo.add_history(ctx.s, req.id, volunteer.id, "finished", ctx.now, hours=hours)
    await ctx.refresh(req.id)
    view = await view_of(ctx.s, ctx.cfg, req, ctx.locale_of(volunteer))
    await ctx.say_to(volunteer, lambda loc: rq.hours_prompt(view, hours, loc))
    delay = ctx.cfg.timings.rating_after_minutes
    if delay:
        await repo.add_timer(ctx.s, ctx.now + timedelta(minutes=delay), "rate", req.id)
    else:
        await ask_rating(ctx, req)
    return True


async def record_hours(ctx: Ctx, req: HelpRequest, volunteer: Person, hours: float) -> None:
    """Write (or correct) the service record: hours and points (奖单)."""
    points = round(hours * ctx.cfg.recognition.points_per_hour, 1)
    served_on = ctx.local(req.started_at or req.claimed_at or ctx.now).date()
    await repo.upsert_service_record(ctx.s, volunteer.id, req.id, served_on, hours, points, ctx.now)
    await repo.update_request(ctx.s, req.id, hours=hours)


async def ask_rating(ctx: Ctx, req: HelpRequest) -> None:
    """Ask the resident to rate a finished request (and remember we are waiting for it)."""
    view = await view_of(ctx.s, ctx.cfg, req, req.locale)
    await ctx.say_to_resident(req, rq.rating_prompt(view, req.locale))
    key = await repo.resident_key(ctx.s, req.resident_id, req.channel, req.chat_id)
    if await repo.get_state(ctx.s, key) is None:
        await repo.set_state(ctx.s, key, "rating", {"request_id": req.id}, ctx.now)


async def cancel(ctx: Ctx, req: HelpRequest, actor: Person) -> bool:
    """The resident cancels an open or claimed request; the claimer is told."""
    moved = await repo.transition(ctx.s, req.id, "cancel", closed_at=ctx.now)
    if moved is None:
        return False
    volunteer_id = moved.volunteer_id  # as written: a claim that won a moment ago is told, too
    await repo.add_history(ctx.s, req.id, actor.id, "cancelled", ctx.now)
    await repo.cancel_timers(ctx.s, req.id, ["remind", "escalate", "rate"])
    await ctx.refresh(req.id)
    if volunteer_id and (vol := await repo.get_person(ctx.s, volunteer_id)):
        await ctx.say_to(vol, lambda loc: Message(t(loc, "detail.cancelled_by_resident", number=req.number)))
    return True

