"""A person at risk: hotlines at once, a crisis case for the on-duty counsellors, its escalation chain, the
counsellors' buttons, and the relay between them and the resident (flows/cases.py holds the case's states).

Who gets a case, level by level, while nobody acknowledges it (every `timings.crisis_escalate_after_minutes`):
  self-harm: on-duty counsellors of the resident's psychological team → the next counsellor → the coordinators
             of the resident's station and institute → the county's coordinators;
  medical:   the coordinators of the resident's station and institute → the county's coordinators.
A level with nobody (new) in it is skipped at once. Coordinators of other units never receive a case.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flows import callbacks
from flows import cases as fc
from flows.i18n import t, words
from flows.intake import check_phone
from flows.types import Message
from handlers import audit, duty
from handlers.context import Ctx
from handlers.events import InboundEvent
from storage import case_repo, repo
from storage.models import ConversationState, CrisisCase, Person, Timer

log = logging.getLogger(__name__)
TIMER = "case"  # timers.kind of a case's escalation clock
FLOW = "crisis"  # the resident's conversation state while a case is live (keeps the form they were in)
RELAY = "case_relay"  # a counsellor's conversation state: their next message goes to the resident


# ---- the resident -----------------------------------------------------------------------------------------

def _kept(state: ConversationState | None) -> dict[str, Any] | None:
    """The conversation the resident was in (a form, a rating) so it can be given back, never lost."""
    if state is None:
        return None
    if state.flow == FLOW:
        kept = state.data.get("resume")
        return dict(kept) if isinstance(kept, dict) else None
    return {"flow": state.flow, "data": dict(state.data)}


def _draft(ctx: Ctx) -> dict[str, Any]:
    kept = _kept(ctx.state) or {}
    data = kept.get("data") or {}
    draft = data.get("draft") if isinstance(data, dict) else None
    return draft if isinstance(draft, dict) else {}


async def on_words(ctx: Ctx, ev: InboundEvent, person: Person, kind: str, text: str) -> None:
    """Words of self-harm or a medical emergency: hotlines first, then a case (or more words for the live one),
    then a gentle question for a phone when none is known. The conversation the person was in is kept."""
    loc = ctx.locale_of(person)
    await ctx.say(ev.channel, ev.chat_id, Message(t(loc, f"safety.{kind}")))
    kept = _kept(ctx.state)
    case = await case_repo.live_case_of(ctx.s, person.id, fc.LIVE)
    if case is None:
        case = await _open(ctx, ev, person, kind, text)
    else:
        await case_repo.add_case_history(ctx.s, case.id, person.id, "words", ctx.now, kind=kind)
        for staff in await _case_people(ctx, case):
            await reveal_case(ctx, case, staff, "words", text=text)
    if not case.phone:
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, f"safety.ask_phone_{case.kind}"), (),
                                                      t(loc, "intake.share_phone")))
    await ctx.set_state(FLOW, {"case": case.id, "resume": kept})


async def _open(ctx: Ctx, ev: InboundEvent, person: Person, kind: str, text: str) -> CrisisCase:
    station = person.station_id or _draft(ctx).get("station") or ev.extra.get("station_hint")
    phone = person.phone or _draft(ctx).get("phone")
    case = await case_repo.add_case(ctx.s, kind=kind, status=fc.OPEN, resident_id=person.id, channel=ev.channel,
                               chat_id=ev.chat_id, station_id=station if ctx.catalog.station(station) else None,
                               phone=phone or None, trigger_text=text[:1000], level=0, created_at=ctx.now)
    await case_repo.add_case_history(ctx.s, case.id, person.id, "opened", ctx.now, kind=kind)
    await _climb(ctx, case, 0)
    log.warning("crisis case %s opened (%s)", case.id, kind)
    return case


async def resident_turn(ctx: Ctx, ev: InboundEvent, person: Person) -> bool:
    """A message or press from a resident whose case is live. True when it was taken here: a phone for the case,
    or words that go to the case. False when the conversation they were in was given back to carry on with
    (the case is closed, or they pressed a button of their form)."""
    assert ctx.state is not None
    data = dict(ctx.state.data)
    case = await case_repo.get_case(ctx.s, int(data.get("case") or 0))
    if case is None or case.status == fc.CLOSED or ev.data:
        await _give_back(ctx, data.get("resume"))
        return False
    loc = ctx.locale_of(person)
    text = (ev.text or "").strip()
    kept = data.get("resume")
    extra = fc.resume_button(case.id, loc) if kept else ()
    phone, _ = check_phone(ev.contact_phone or text)
    if phone is not None:
        person.phone = phone
        await case_repo.case_transition(ctx.s, case.id, fc.LIVE, None, phone=phone)
        case.phone = phone
        await case_repo.add_case_history(ctx.s, case.id, person.id, "phone", ctx.now)
        for staff in await _case_people(ctx, case):
            await reveal_case(ctx, case, staff, "phone")
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, f"safety.phone_thanks_{case.kind}"), extra))
        return True
    if not text:
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "intake.voice"), extra))
        return True
    await case_repo.add_case_history(ctx.s, case.id, person.id, "words", ctx.now)
    for staff in await _case_people(ctx, case):
        await reveal_case(ctx, case, staff, "words", text=text)
    await ctx.say(ev.channel, ev.chat_id, Message(t(loc, f"safety.relayed_{case.kind}"), extra))
    return True


async def _give_back(ctx: Ctx, kept: object) -> None:
    """Put the resident back in the conversation they were in before the crisis words (or in none)."""
    if isinstance(kept, dict) and kept.get("flow"):
        await ctx.set_state(str(kept["flow"]), dict(kept.get("data") or {}))
    else:
        await ctx.clear_state()


async def give_back(ctx: Ctx) -> str | None:
    """The resident pressed 继续填写: their kept conversation again; returns its flow (None: there was none)."""
    if ctx.state is None or ctx.state.flow != FLOW:
        return None
    kept = ctx.state.data.get("resume")
    await _give_back(ctx, kept)
    return str(kept["flow"]) if isinstance(kept, dict) and kept.get("flow") else None


# ---- who receives a case ------------------------------------------------------------------------------------

def _unit_coordinator_units(ctx: Ctx, case: CrisisCase) -> set[str]:
    return set(ctx.cfg.unit_chain(case.station_id)) - {ctx.cfg.org.center.id}


async def _psych_teams(ctx: Ctx, case: CrisisCase) -> list[str]:
    """The psychological teams serving the resident's station (the county's when the station is not known)."""
    unit = case.station_id or ctx.cfg.org.center.id
    teams = [ctx.cfg.route(unit, c.id, None) for c in ctx.catalog.categories if c.sensitive]
    return list(dict.fromkeys(team.id for team in teams if team is not None))


async def on_duty_counsellors(ctx: Ctx, case: CrisisCase) -> list[Person]:
    """Counsellors (the `counsellor` qualification) on duty now in the resident's psychological teams."""
    counsellors = ctx.cfg.counsellor_ids()
    found: dict[str, Person] = {}
    for team_id in await _psych_teams(ctx, case):
        found.update({p.id: p for p in await duty.on_duty(ctx, team_id) if p.id in counsellors})
    return list(found.values())


async def _next_counsellor(ctx: Ctx, case: CrisisCase, alerted: set[str]) -> list[Person]:
    """One more counsellor not alerted yet: a member of the resident's psychological team first."""
    members = {m.id for team_id in await _psych_teams(ctx, case) for m in await repo.team_members(ctx.s, team_id)}
    for pid in sorted(ctx.cfg.counsellor_ids() - alerted, key=lambda p: (p not in members, p)):
        person = await repo.get_person(ctx.s, pid)
        if person is not None and person.trained:
            return [person]
    return []


CHAINS = {"self_harm": ("counsellors", "next_counsellor", "unit", "county"), "medical": ("unit", "county")}


async def _level(ctx: Ctx, case: CrisisCase, level: int, alerted: set[str]) -> list[Person] | None:
    """The people of one level of the case's chain; None past its end."""
    chain = CHAINS.get(case.kind, CHAINS["self_harm"])
    if level >= len(chain):
        return None
    step = chain[level]
    if step == "counsellors":
        return await on_duty_counsellors(ctx, case)
    if step == "next_counsellor":
        return await _next_counsellor(ctx, case, alerted)
    coordinators = await repo.coordinators(ctx.s)
    if step == "unit":
        units = _unit_coordinator_units(ctx, case)
        return [p for p in coordinators if p.unit in units]
    return [p for p in coordinators if p.unit == ctx.cfg.org.center.id]


async def _alerted(ctx: Ctx, case_id: int) -> set[str]:
    """Everyone a case was sent to so far."""
    return {pid for item in await case_repo.case_history(ctx.s, case_id) if item.action in ("alerted", "handed")
            for pid in item.detail.get("to", [])}


async def _case_people(ctx: Ctx, case: CrisisCase) -> list[Person]:
    """Who handles the case now: its assignee, else everyone it was sent to."""
    ids = [case.assignee_id] if case.assignee_id else sorted(await _alerted(ctx, case.id))
    return [p for pid in ids if (p := await repo.get_person(ctx.s, pid)) is not None]


async def _others(ctx: Ctx, case: CrisisCase, person: Person) -> list[Person]:
    """Everyone else the case was sent to (told when it is taken or closed, so nobody calls twice)."""
    ids = sorted(await _alerted(ctx, case.id) - {person.id})
    return [p for pid in ids if (p := await repo.get_person(ctx.s, pid)) is not None]


async def _climb(ctx: Ctx, case: CrisisCase, level: int) -> None:
    """Send the case to the first level from `level` on with someone new in it; restart its clock there."""
    alerted = await _alerted(ctx, case.id)
    while (people := await _level(ctx, case, level, alerted)) is not None:
        fresh = [p for p in people if p.id not in alerted]
        if fresh:
            if level != case.level:
                await case_repo.case_transition(ctx.s, case.id, fc.LIVE, None, level=level)
                case.level = level
            await case_repo.add_case_history(ctx.s, case.id, None, "alerted", ctx.now, level=level,
                                        to=[p.id for p in fresh])
            for person in fresh:
                await reveal_case(ctx, case, person, "escalated" if level else "alert")
            await _start_clock(ctx, case, level)
            return
        level += 1
    log.warning("crisis case %s: nobody left to alert in its chain", case.id)


async def _start_clock(ctx: Ctx, case: CrisisCase, level: int) -> None:
    after = timedelta(minutes=ctx.cfg.timings.crisis_escalate_after_minutes)
    await repo.add_timer(ctx.s, ctx.now + after, TIMER, None, case=case.id, level=level)


async def on_timer(ctx: Ctx, timer: Timer) -> None:
    """A case's clock ran out: if still nobody acknowledged it at that level, it climbs (one conditional write
    decides, so a second clock of the same level climbs nothing)."""
    case = await case_repo.get_case(ctx.s, int(timer.payload.get("case") or 0))
    level = int(timer.payload.get("level") or 0)
    if case is None or case.status != fc.OPEN:
        return
    if not await case_repo.case_transition(ctx.s, case.id, {fc.OPEN}, None, at_level=level, level=level + 1):
        return
    case.level = level + 1
    await case_repo.add_case_history(ctx.s, case.id, None, "escalated", ctx.now, level=level + 1)
    await _climb(ctx, case, level + 1)
    log.info("crisis case %s climbed to level %s", case.id, case.level)


# ---- the one place a case's personal details leave the database ---------------------------------------------

async def reveal_case(ctx: Ctx, case: CrisisCase, to: Person, why: str, text: str | None = None,
                      by: Person | None = None) -> None:
    """Send a case's personal details (the resident's phone, their words) privately to one of the people handling
    it. `why`: alert | escalated | handed | phone | words. Every such reveal goes through here (audit: one line)."""
    station = ctx.catalog.station(case.station_id)
    community = station.community if station else t(ctx.locale_of(to), "case.no_station")
    resident = await repo.get_person(ctx.s, case.resident_id)
    phone = case.phone or (resident.phone if resident else None)

    def build(loc: str) -> Message:
        if why == "phone":
            return Message(t(loc, "case.phone_added", case=fc.number(case.id), phone=phone or ""),
                           fc.alert(view, loc).buttons)
        if why == "words":
            return Message(t(loc, "case.resident_says", case=fc.number(case.id), text=(text or "")[:500]),
                           fc.alert(view, loc).buttons)
        return fc.alert(view, loc)

    await audit.record(ctx, to.id, "case_alert", None, case.resident_id, f"case_{why}")
    view = fc.CaseView(id=case.id, kind=case.kind, status=case.status, community=community, phone=phone,
                       text=case.trigger_text[:500], channel=case.channel, escalated=why == "escalated",
                       handed_by=by.name if by is not None and why == "handed" else None)
    await ctx.say_to(to, build)


# ---- the counsellors' buttons ----------------------------------------------------------------------------------

async def on_press(ctx: Ctx, ev: InboundEvent, person: Person | None, cb: callbacks.Callback) -> str:
    """A press on a case button (我来联系, 已联系 and its outcome, 转给… and whom, 给TA留言)."""
    loc = ctx.locale_of(person)
    case = await case_repo.get_case(ctx.s, int(cb.target)) if cb.target.isdigit() and int(cb.target) < 2**31 else None
    if case is None:
        return t(loc, "press.stale")
    if person is None or person.id not in await _alerted(ctx, case.id) | {case.assignee_id}:
        return t(loc, "case.not_yours")
    if case.status == fc.CLOSED:
        return t(loc, "case.closed")
    if case.assignee_id not in (None, person.id):
        return await _taken(ctx, case, loc)
    if cb.action == fc.ACK:
        return await _ack(ctx, case, person)
    if cb.action == fc.DONE:
        await ctx.say(ev.channel, ev.chat_id, fc.outcome_question(case.id, loc))
        return t(loc, "case.pick_outcome")
    if cb.action == fc.OUTCOME:
        return await _outcome(ctx, case, person, cb.arg)
    if cb.action == fc.FORWARD:
        others = [(p.id, p.name) for p in await _hand_candidates(ctx, case, person)]
        if not others:
            return t(loc, "case.forward_none")
        await ctx.say(ev.channel, ev.chat_id, fc.hand_question(case.id, others, loc))
        return t(loc, "case.pick_person")
    if cb.action == fc.HAND_TO:
        return await _hand(ctx, case, person, cb.arg)
    if cb.action == fc.WRITE:
        await ctx.set_state(RELAY, {"case": case.id})
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "case.write_prompt", case=fc.number(case.id))))
        return t(loc, "case.write_short")
    return t(loc, "press.stale")


async def _taken(ctx: Ctx, case: CrisisCase, loc: str) -> str:
    owner = await repo.get_person(ctx.s, case.assignee_id) if case.assignee_id else None
    return t(loc, "case.taken", name=owner.name if owner else "-")


async def _ack(ctx: Ctx, case: CrisisCase, person: Person) -> str:
    """我来联系: the first press wins (one conditional write); the resident hears someone is coming."""
    loc = ctx.locale_of(person)
    if not await case_repo.case_transition(ctx.s, case.id, fc.TRANSITIONS["ack"], person.id, status=fc.ACKNOWLEDGED,
                                      assignee_id=person.id, acknowledged_at=ctx.now):
        fresh = await case_repo.get_case(ctx.s, case.id) or case
        if fresh.assignee_id == person.id:
            return t(loc, "case.already_yours")
        return t(loc, "case.closed") if fresh.status == fc.CLOSED else await _taken(ctx, fresh, loc)
    others = await _others(ctx, case, person)
    case.status, case.assignee_id = fc.ACKNOWLEDGED, person.id
    await case_repo.add_case_history(ctx.s, case.id, person.id, "acknowledged", ctx.now)
    resident = await repo.get_person(ctx.s, case.resident_id)
    await ctx.say(case.channel, case.chat_id, Message(t(ctx.locale_of(resident), f"safety.coming_{case.kind}")))
    for other in others:
        await ctx.say_to(other, lambda lc: Message(t(lc, "case.taken_note", case=fc.number(case.id),
                                                       name=person.name)))
    return t(loc, "case.acked")


async def _outcome(ctx: Ctx, case: CrisisCase, person: Person, code: str) -> str:
    """已联系 → an outcome: the case moves on (follow-up) or is closed; the others alerted are told."""
    loc = ctx.locale_of(person)
    if code not in fc.OUTCOMES:
        return t(loc, "press.stale")
    to = fc.OUTCOMES[code]
    values: dict[str, Any] = {"status": to, "assignee_id": person.id, "outcome": code}
    if case.acknowledged_at is None:
        values["acknowledged_at"] = ctx.now
    if to == fc.CLOSED:
        values["closed_at"] = ctx.now
    if not await case_repo.case_transition(ctx.s, case.id, fc.TRANSITIONS["outcome"], person.id, **values):
        fresh = await case_repo.get_case(ctx.s, case.id) or case
        return t(loc, "case.closed") if fresh.status == fc.CLOSED else await _taken(ctx, fresh, loc)
    others = await _others(ctx, case, person)
    await case_repo.add_case_history(ctx.s, case.id, person.id, "outcome", ctx.now, outcome=code)
    if case.status == fc.OPEN:  # recorded without 我来联系 first: the others still need to know
        resident = await repo.get_person(ctx.s, case.resident_id)
        if code != "unreachable":
            await ctx.say(case.channel, case.chat_id, Message(t(ctx.locale_of(resident), f"safety.coming_{case.kind}")))
    for other in others:
        await ctx.say_to(other, lambda lc: Message(t(lc, "case.outcome_note", case=fc.number(case.id),
                                                       name=person.name, outcome=t(lc, f"case.outcome.{code}"))))
    return t(loc, "case.outcome_recorded", outcome=t(loc, f"case.outcome.{code}"))


async def _hand_candidates(ctx: Ctx, case: CrisisCase, person: Person) -> list[Person]:
    """Whom a case may be handed to: the other counsellors on duty, else any other counsellor."""
    on = [p for p in await on_duty_counsellors(ctx, case) if p.id != person.id]
    if on:
        return on
    ids = sorted(ctx.cfg.counsellor_ids() - {person.id})
    return [p for pid in ids if (p := await repo.get_person(ctx.s, pid)) is not None and p.trained]


async def _hand(ctx: Ctx, case: CrisisCase, person: Person, target_id: str) -> str:
    """转给 someone: the case is offered to them alone (open, theirs to acknowledge) and its clock starts again."""
    loc = ctx.locale_of(person)
    target = await repo.get_person(ctx.s, target_id)
    if target is None or target.id == person.id or target.id not in ctx.cfg.counsellor_ids():
        return t(loc, "press.stale")
    if not await case_repo.case_transition(ctx.s, case.id, fc.TRANSITIONS["hand"], person.id, status=fc.OPEN,
                                      assignee_id=target.id):
        fresh = await case_repo.get_case(ctx.s, case.id) or case
        return t(loc, "case.closed") if fresh.status == fc.CLOSED else await _taken(ctx, fresh, loc)
    case.status, case.assignee_id = fc.OPEN, target.id
    await case_repo.add_case_history(ctx.s, case.id, person.id, "handed", ctx.now, to=[target.id])
    await reveal_case(ctx, case, target, "handed", by=person)
    await _start_clock(ctx, case, case.level)
    return t(loc, "case.handed", name=target.name)


async def relay(ctx: Ctx, ev: InboundEvent, person: Person, data: dict[str, Any]) -> None:
    """A counsellor's words after 给TA留言: sent to the resident in their chat through the bot."""
    loc = ctx.locale_of(person)
    text = (ev.text or "").strip()
    await ctx.clear_state()
    case = await case_repo.get_case(ctx.s, int(data.get("case") or 0))
    if text.lower() in words("kw.cancel") or not text:
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "case.write_cancelled")))
        return
    if case is None or case.status == fc.CLOSED:
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "case.closed")))
        return
    resident = await repo.get_person(ctx.s, case.resident_id)
    await ctx.say(case.channel, case.chat_id, Message(t(ctx.locale_of(resident), "safety.from_counsellor",
                                                        text=text[:1000])))
    await case_repo.add_case_history(ctx.s, case.id, person.id, "wrote", ctx.now)
    await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "case.write_sent", case=fc.number(case.id))))


# ---- /case: a case's history -------------------------------------------------------------------------------

async def may_view(ctx: Ctx, case: CrisisCase, person: Person) -> bool:
    """The county's coordinators, the coordinators of the resident's unit, and everyone the case was sent to."""
    if person.is_coordinator and person.unit is not None and (
            person.unit == ctx.cfg.org.center.id or person.unit in _unit_coordinator_units(ctx, case)):
        return True
    return person.id == case.assignee_id or person.id in await _alerted(ctx, case.id)


async def cmd_case(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/case W0012: a crisis case's state and history (who was alerted, who took it, the outcome), for the
    people of the case; the resident's words and phone are not repeated here. Each view is audited."""
    loc = ctx.locale_of(person)
    case_id = fc.parse_number(args[0]) if len(args) == 1 else None
    case = await case_repo.get_case(ctx.s, case_id) if case_id is not None else None
    if case is None:
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "case.view_usage")))
        return
    if not await may_view(ctx, case, person):
        await ctx.say(ev.channel, ev.chat_id, Message(t(loc, "case.not_yours")))
        return
    await audit.record(ctx, person.id, "case_view", None, case.resident_id, "case_view")
    names: dict[str, str] = {}

    async def name(pid: str | None) -> str:
        if not pid:
            return t(loc, "action.system")
        if pid not in names:
            p = await repo.get_person(ctx.s, pid)
            staff = p is not None and (p.is_volunteer or p.is_coordinator)
            names[pid] = p.name if staff and p is not None else t(loc, "coord.audit_resident")
        return names[pid]

    station = ctx.catalog.station(case.station_id)
    lines = [t(loc, "case.view_head", case=fc.number(case.id), kind=t(loc, f"case.kind_{case.kind}"),
               status=t(loc, f"case.status_{case.status}"),
               community=station.community if station else t(loc, "case.no_station"),
               assignee=await name(case.assignee_id) if case.assignee_id else "-",
               outcome=t(loc, f"case.outcome.{case.outcome}") if case.outcome else "-")]
    for item in await case_repo.case_history(ctx.s, case.id):
        to = [await name(pid) for pid in item.detail.get("to", [])]
        what = t(loc, f"case.event_{item.action}") if item.action in fc.EVENTS else item.action
        if item.action == "outcome" and item.detail.get("outcome"):
            what += "：" + t(loc, f"case.outcome.{item.detail['outcome']}")
        lines.append(t(loc, "case.view_line", at=f"{ctx.local(item.at):%m-%d %H:%M}", who=await name(item.actor_id),
                       what=what + (" → " + "、".join(to) if to else "")))
    await ctx.say(ev.channel, ev.chat_id, Message("\n".join(lines)))
