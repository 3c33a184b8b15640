"""Who is speaking and which handler takes the event: one ordered list, first match wins."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from flows import callbacks, safety
from flows import cases as fc
from flows.i18n import keywords, t
from flows.types import Message
from handlers import crisis, presses, resident, rights, staff, timers
from handlers.context import Ctx
from handlers.events import InboundEvent
from storage import repo
from storage.models import Person

Handler = Callable[[Ctx, InboundEvent, Person | None], Awaitable["tuple[bool, str | None]"]]


async def identify(ctx: Ctx, ev: InboundEvent) -> Person | None:
    """The person behind the event; a stranger writing privately becomes a new resident. An adapter whose
    user ids are another channel's (the WeCom robot sees corp userids) names it in extra["identity_channel"]."""
    person = await repo.person_for_identity(ctx.s, ev.extra.get("identity_channel") or ev.channel, ev.user_id)
    if person is None and ev.chat_type == "private" and ev.kind != "timer":
        person = await repo.create_resident(ctx.s, ev.channel, ev.user_id, ev.chat_id,
                                            ev.user_name or "", ctx.now)
    if person is not None and ev.locale and not person.locale and ev.locale.lower().startswith("en"):
        person.locale = "en"
    return person


async def _timer(ctx: Ctx, ev: InboundEvent, person: Person | None) -> tuple[bool, str | None]:
    if ev.kind != "timer":
        return False, None
    await timers.on_timer(ctx, ev)
    return True, None


async def _press(ctx: Ctx, ev: InboundEvent, person: Person | None) -> tuple[bool, str | None]:
    if ev.kind != "press":
        return False, None
    cb = callbacks.parse(ev.data)
    if cb is not None and cb.action == fc.RESUME:
        return True, await resident.resume(ctx, ev, person)
    if cb is not None and cb.action in fc.BUTTON_ACTIONS:
        return True, await crisis.on_press(ctx, ev, person, cb)
    answer = await presses.on_press(ctx, ev, person)
    if answer is not None:
        return True, answer
    if cb is not None and cb.action == "i" and person is not None and ev.chat_type == "private":
        return True, await resident.converse(ctx, ev, person)  # an intake button
    if cb is not None and cb.action == "p" and person is not None and ev.chat_type == "private":
        return True, await rights.on_press(ctx, ev, person, cb)  # the privacy notice, 删除我的数据
    return True, t(ctx.locale_of(person), "press.stale")  # foreign or outdated data: say so, never fail


async def _group(ctx: Ctx, ev: InboundEvent, person: Person | None) -> tuple[bool, str | None]:
    if ev.chat_type != "group":
        return False, None
    if (ev.text or "").startswith("/"):
        if person is not None:
            await staff.on_command(ctx, ev, person)
        elif (parsed := staff.parse(ev.text or "")) and parsed[0] in staff.COORDINATOR:
            # someone the bot does not know yet tries a coordinator command: say how to get known
            await ctx.say(ev.channel, ev.chat_id, Message(t(ctx.cfg.locale, "link.unknown_in_group")))
    return True, None  # other chatter in groups is not for the bot


async def _safety(ctx: Ctx, ev: InboundEvent, person: Person | None) -> tuple[bool, str | None]:
    """Every free text a person writes privately is checked for urgent danger before anything else is done with
    it (a form step, a comment, a command's words); a counsellor's words to a resident are not theirs."""
    text = (ev.text or "").strip()
    if person is None or ev.kind != "message" or ev.chat_type != "private" or not text or text.startswith("/"):
        return False, None
    if text.lower() in keywords():  # a command word (我的数据, 取消 …) is not something a person says of themselves
        return False, None
    if ctx.state is not None and ctx.state.flow == crisis.RELAY:
        return False, None
    kind = safety.detect(text)
    if kind is None:
        return False, None
    await crisis.on_words(ctx, ev, person, kind, text)
    return True, None


async def _relay(ctx: Ctx, ev: InboundEvent, person: Person | None) -> tuple[bool, str | None]:
    """A counsellor's message after 给TA留言 goes to the resident of the case."""
    if person is None or ev.kind != "message" or ctx.state is None or ctx.state.flow != crisis.RELAY:
        return False, None
    await crisis.relay(ctx, ev, person, dict(ctx.state.data))
    return True, None


async def _command(ctx: Ctx, ev: InboundEvent, person: Person | None) -> tuple[bool, str | None]:
    if person is None or not ev.text:
        return False, None
    state = ctx.state
    if state is not None and state.flow in ("intake", crisis.FLOW) and not ev.text.startswith("/"):
        return False, None  # in the middle of a form, words are answers; during a case, they go to it
    if ev.text.strip().lower() in ("/cancel", "/start"):
        return False, None
    return await staff.on_command(ctx, ev, person), None


async def _hours(ctx: Ctx, ev: InboundEvent, person: Person | None) -> tuple[bool, str | None]:
    if person is None or not person.is_volunteer:
        return False, None
    state = ctx.state
    if state is None or state.flow != "hours":
        return False, None
    await staff.on_hours_text(ctx, ev, person, state.data)
    return True, None


async def _conversation(ctx: Ctx, ev: InboundEvent, person: Person | None) -> tuple[bool, str | None]:
    if person is None:
        return False, None
    return True, await resident.converse(ctx, ev, person)


HANDLERS: list[Handler] = [_timer, _press, _group, _safety, _relay, _command, _hours, _conversation]


async def route(ctx: Ctx, ev: InboundEvent) -> str | None:
    """Run the first handler that takes the event; returns the toast for a press."""
    person = None if ev.kind == "timer" else await identify(ctx, ev)
    if ctx.key is not None:
        ctx.state = await repo.get_state(ctx.s, ctx.key)  # once per event, after the conversation lock
    for handler in HANDLERS:
        taken, answer = await handler(ctx, ev, person)
        if taken:
            return answer
    return None
