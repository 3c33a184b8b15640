"""Button presses on request messages: claim, start, finish, give back, cancel, rate, confirm hours."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from flows import callbacks
from flows import lifecycle as lc
from flows import requests as rq
from flows.i18n import t
from flows.types import Button, Message
from handlers import effects, ops
from handlers.context import Ctx
from handlers.events import InboundEvent
from storage import repo
from storage.models import HelpRequest, Person

PressHandler = Callable[[Ctx, InboundEvent, Person | None, HelpRequest, callbacks.Callback], Awaitable[str]]


async def on_press(ctx: Ctx, ev: InboundEvent, person: Person | None) -> str | None:
    """Handle a press on a request button; returns the toast. None if the data is not ours."""
    cb = callbacks.parse(ev.data)
    loc = ctx.locale_of(person)
    if cb is None:
        return t(loc, "press.stale")
    handler = _ACTIONS.get(cb.action)
    if handler is None:
        return None  # intake buttons and others: the conversation handles them
    req = await repo.get_request(ctx.s, int(cb.target)) if cb.target.isdigit() else None
    if req is None:
        return t(loc, "press.stale")
    return await handler(ctx, ev, person, req, cb)


async def settled_answer(ctx: Ctx, ev: InboundEvent) -> str | None:
    """The answer to a press that can change nothing, known from a read alone (no write, no lock): 接单 on a
    card someone already has. Under a burst of presses on one card only the first ones go on to write."""
    cb = callbacks.parse(ev.data)
    if cb is None or cb.action != "claim" or not cb.target.isdigit() or int(cb.target) >= 2**31:
        return None
    req = await repo.get_request(ctx.s, int(cb.target))
    if req is None or req.status == rq.OPEN:
        return None
    person = await repo.person_for_identity(ctx.s, ev.extra.get("identity_channel") or ev.channel, ev.user_id)
    return _taken(ctx.locale_of(person), req, person)


def _taken(loc: str, req: HelpRequest, person: Person | None) -> str:
    return t(loc, "claim.already_yours" if person is not None and req.volunteer_id == person.id else "claim.taken")


async def _claim(ctx: Ctx, ev: InboundEvent, person: Person | None, req: HelpRequest,
                 cb: callbacks.Callback) -> str:
    loc = ctx.locale_of(person)
    why = await ops.can_claim(ctx, req, person)
    if why is not None or person is None:
        return t(loc, why or "claim.not_volunteer")
    # no status check here: the one conditional write decides (a read could be stale on another worker)
    if await ops.claim(ctx, req, person, via="press", actor=person.id):
        return t(loc, "claim.won", number=req.number)
    return _taken(loc, await repo.get_request(ctx.s, req.id) or req, person)


def _own(person: Person | None, req: HelpRequest) -> bool:
    return person is not None and req.volunteer_id == person.id


def _claimer_action(op: Callable[[Ctx, HelpRequest, Person], Awaitable[bool]], done_key: str) -> PressHandler:
    """A press only the claimer may make (出发, 完成服务, 退回): run `op`, answer with `done_key`."""

    async def handler(ctx: Ctx, ev: InboundEvent, person: Person | None, req: HelpRequest,
                      cb: callbacks.Callback) -> str:
        loc = ctx.locale_of(person)
        if person is None or req.volunteer_id != person.id:
            return t(loc, "press.not_yours")
        return t(loc, done_key) if await op(ctx, req, person) else t(loc, "press.too_late")

    return handler


async def _cancel(ctx: Ctx, ev: InboundEvent, person: Person | None, req: HelpRequest,
                  cb: callbacks.Callback) -> str:
    loc = ctx.locale_of(person)
    if person is None or person.id != req.resident_id:
        return t(loc, "press.not_yours")
    if await ops.cancel(ctx, req, person):
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "resident.cancelled", number=req.number)))
        return t(loc, "press.cancelled")
    return t(loc, "resident.cannot_cancel", state=t(loc, f"status.{req.status}", name=""))


async def _rate(ctx: Ctx, ev: InboundEvent, person: Person | None, req: HelpRequest,
                cb: callbacks.Callback) -> str:
    loc = ctx.locale_of(person)
    if person is None or person.id != req.resident_id:
        return t(loc, "press.not_yours")
    if not cb.arg.isdigit() or not 1 <= int(cb.arg) <= 5:
        return t(loc, "press.stale")
    return await rate(ctx, ev, person, req, int(cb.arg))


async def rate(ctx: Ctx, ev: InboundEvent, person: Person, req: HelpRequest, stars: int) -> str:
    """Record a 1–5 star rating once; a low one alerts the coordinators; then invite a comment."""
    loc = ctx.locale_of(person)
    if req.status != rq.FINISHED:
        return t(loc, "rating.not_yet")
    volunteer = await repo.get_person(ctx.s, req.volunteer_id) if req.volunteer_id else None
    step = lc.rate(effects.facts_of(ctx, req), stars, person.id, volunteer.name if volunteer else "-")
    if not await effects.apply(ctx, req, step):
        return t(loc, "rating.already")
    await ctx.set_state("rating_comment", {"request_id": req.id})
    no = Button(t(loc, "rating.no_comment"), callbacks.make("nocomment", req.id))
    await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "rating.thanks"), ((no,),)))
    return t(loc, "rating.recorded", stars=stars)


async def _no_comment(ctx: Ctx, ev: InboundEvent, person: Person | None, req: HelpRequest,
                      cb: callbacks.Callback) -> str:
    loc = ctx.locale_of(person)
    await ctx.clear_state()
    await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "rating.bye")))
    return t(loc, "rating.bye_short")


async def _hours_ok(ctx: Ctx, ev: InboundEvent, person: Person | None, req: HelpRequest,
                    cb: callbacks.Callback) -> str:
    loc = ctx.locale_of(person)
    if not _own(person, req) or req.status != rq.FINISHED:
        return t(loc, "press.not_yours")
    assert person is not None
    total, year, points, _ = await repo.volunteer_totals(ctx.s, person.id, ctx.local().year)
    await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "hours.confirmed", hours=rq.fmt_hours(req.hours or 0),
                                                    total=rq.fmt_hours(total), points=rq.fmt_hours(points))))
    return t(loc, "hours.ok_short")


async def _hours_set(ctx: Ctx, ev: InboundEvent, person: Person | None, req: HelpRequest,
                     cb: callbacks.Callback) -> str:
    loc = ctx.locale_of(person)
    if not _own(person, req) or req.status != rq.FINISHED:
        return t(loc, "press.not_yours")
    await ctx.set_state("hours", {"request_id": req.id})
    await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "hours.type", max=rq.fmt_hours(ctx.cfg.timings.hours_max))))
    return t(loc, "hours.type_short")


_ACTIONS: dict[str, PressHandler] = {
    "claim": _claim, "start": _claimer_action(ops.start, "press.started"),
    "finish": _claimer_action(ops.finish, "press.finished"), "release": _claimer_action(ops.release, "press.released"),
    "cancel": _cancel,
    "rate": _rate, "nocomment": _no_comment, "hoursok": _hours_ok, "hourset": _hours_set,
}
