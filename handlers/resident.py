"""A person's private conversation: the intake form, ratings and comments, their request list; while a crisis
case is live (handlers/crisis.py), the form they were in is kept and given back."""
from __future__ import annotations

import logging
from datetime import timedelta

from flows import intake
from flows import lifecycle as lc
from flows import requests as rq
from flows.i18n import t, words
from flows.types import Message, UserInput
from handlers import crisis, effects, ops, presses, rights
from handlers.context import Ctx
from handlers.events import InboundEvent
from handlers.views import view_of
from storage import repo
from storage.models import Person

log = logging.getLogger(__name__)


def _input(ev: InboundEvent) -> UserInput:
    return UserInput(text=ev.text, data=ev.data, contact_phone=ev.contact_phone, location=ev.location)


def intake_context(ctx: Ctx, person: Person, station_hint: str | None = None) -> intake.Context:
    """What the pure intake flow may know."""
    return intake.Context(catalog=ctx.catalog, now=ctx.local(), locale=ctx.locale_of(person),
                          station_hint=station_hint or person.station_id, greeting_unit=ctx.cfg.org.center.name)


async def converse(ctx: Ctx, ev: InboundEvent, person: Person) -> str | None:
    """Handle a private message or an intake press; returns a toast for presses."""
    state = ctx.state
    if state is not None and ctx.now - state.updated_at > timedelta(days=ctx.cfg.privacy.retention.drafts_days):
        # an abandoned form is forgotten (the purge removes it too, whether or not the person writes again)
        await ctx.clear_state()
        state = None
    text = (ev.text or "").strip()
    loc = ctx.locale_of(person)
    if ev.kind == "media":
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "intake.voice")))
        return None
    if state is not None and state.flow == crisis.FLOW:
        if await crisis.resident_turn(ctx, ev, person):
            return None
        state = ctx.state  # the conversation they were in, given back: carry on with it
    in_form = state is not None and state.flow == "intake"
    if not ev.data and (right := rights.command(text)) is not None:
        await rights.on_command(ctx, ev, person, right, in_form)  # a form going on is kept
        return None
    if state is not None and state.flow in ("privacy", "rights") and await rights.on_state(ctx, ev, person, text):
        return None
    state = ctx.state
    if state is not None and state.flow == "intake":
        return await _intake_step(ctx, ev, person, dict(state.data))
    if state is not None and state.flow in ("rating", "rating_comment") and not ev.data:
        if await _rating_text(ctx, ev, person, state.flow, state.data, text):
            return None
    if ev.data:  # a press on an old intake button with no form open
        await start_intake(ctx, ev, person)
        return t(loc, "press.stale")
    if text.lower() in words("kw.mine"):
        await show_requests(ctx, ev, person)
        return None
    if text.lower() in words("kw.cancel") or text.lower() == "/cancel":
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "intake.nothing_to_cancel")))
        return None
    await start_intake(ctx, ev, person)
    return None


async def resume(ctx: Ctx, ev: InboundEvent, person: Person | None) -> str:
    """继续填写 after crisis words: the kept form comes back at the question it was on."""
    loc = ctx.locale_of(person)
    flow = await crisis.give_back(ctx) if person is not None else None
    if person is None or ctx.state is None or flow is None:
        return t(loc, "press.stale")
    if flow == "intake":
        question = intake.ask_again(dict(ctx.state.data), intake_context(ctx, person))
        await ctx.say(ev.channel, ev.chat_id, question)
    else:
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "safety.resumed")))
    return t(loc, "safety.resumed_short")


async def start_intake(ctx: Ctx, ev: InboundEvent, person: Person, station_hint: str | None = None) -> None:
    """Begin the form (after the privacy notice, which the person must have accepted first)."""
    hint = station_hint or ev.extra.get("station_hint")
    if await rights.gate(ctx, ev, person, hint):
        return
    res = intake.start(intake_context(ctx, person, hint))
    for msg in res.messages:
        await ctx.say(ev.channel, ev.chat_id, msg)
    await ctx.set_state("intake", res.state or {})


async def _intake_step(ctx: Ctx, ev: InboundEvent, person: Person, data: dict[str, object]) -> str | None:
    res = intake.step(data, _input(ev), intake_context(ctx, person))
    for msg in res.messages:
        await ctx.say(ev.channel, ev.chat_id, msg)
    if res.state is not None:
        await ctx.set_state("intake", res.state)
        return None
    await ctx.clear_state()
    if res.submit is not None:
        await ops.submit(ctx, person, ev.channel, ev.chat_id, res.submit)
    elif res.action == "my_requests":
        await show_requests(ctx, ev, person)
    return None


async def _rating_text(ctx: Ctx, ev: InboundEvent, person: Person, flow: str,
                       data: dict[str, object], text: str) -> bool:
    """A typed rating (1–5) or comment; False when the text is something else entirely."""
    req = await repo.get_request(ctx.s, int(str(data["request_id"])))
    if req is None:
        await ctx.clear_state()
        return False
    if flow == "rating":
        stars = text.count("⭐") or (int(text[0]) if text[:1].isdigit() and len(text) <= 2 else 0)
        if not 1 <= stars <= 5:
            await ctx.clear_state()
            return False
        await presses.rate(ctx, ev, person, req, stars)
        return True
    await ctx.clear_state()
    loc = ctx.locale_of(person)
    if text.lower() not in words("kw.no_comment"):
        rating = await repo.get_rating(ctx.s, req.id)
        await effects.apply(ctx, req, lc.comment(effects.facts_of(ctx, req), person.id, text,
                                                 rating.stars if rating else None))
    await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "rating.bye")))
    return True


async def show_requests(ctx: Ctx, ev: InboundEvent, person: Person) -> None:
    """The resident's requests and their states, with cancel buttons."""
    loc = ctx.locale_of(person)
    views = [await view_of(ctx.s, ctx.cfg, r, loc) for r in await repo.requests_of(ctx.s, person.id)]
    await ctx.say(ev.channel, ev.chat_id, rq.resident_list(views, loc))
