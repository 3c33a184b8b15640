"""Volunteer and coordinator commands: duty, hours, tasks; open requests, assign, history, roster."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from flows import cases as fc
from flows import lifecycle as lc
from flows import requests as rq
from flows.i18n import norm_locale, t, words
from flows.types import Message
from handlers import accounts, audit, crisis, duty, effects, ops
from handlers.context import Ctx
from handlers.events import InboundEvent
from handlers.views import view_of
from storage import case_repo, privacy_repo, repo
from storage.models import Person

Command = Callable[[Ctx, InboundEvent, Person, list[str]], Awaitable[None]]


async def _reply(ctx: Ctx, ev: InboundEvent, text: str) -> None:
    await ctx.say(ev.channel, ev.chat_id, Message(text))


# ---- volunteers ----------------------------------------------------------------------------------

async def _duty(ctx: Ctx, ev: InboundEvent, person: Person, on: bool) -> None:
    local_until = duty.shift_end(ctx.cfg, person.id, ctx.local())
    await repo.set_duty(ctx.s, person.id, on, ctx.to_utc(local_until))
    key = "duty.started" if on else "duty.stopped"
    await _reply(ctx, ev, t(ctx.locale_of(person), key, until=f"{local_until:%m-%d %H:%M}"))


async def cmd_on(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """值班: on duty until the end of the current shift."""
    await _duty(ctx, ev, person, True)


async def cmd_off(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """下班: off duty until the end of the current shift."""
    await _duty(ctx, ev, person, False)


async def cmd_hours(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """我的时长: total and this year's hours, star level, points."""
    year = ctx.local().year
    total, this_year, points, count = await repo.volunteer_totals(ctx.s, person.id, year)
    thresholds = ctx.cfg.recognition.star_thresholds
    stars = rq.star_level(total, thresholds)
    nxt = next((th for th in thresholds if total < th), None)
    loc = ctx.locale_of(person)
    text = t(loc, "hours.summary", name=person.name, total=rq.fmt_hours(total), year=year,
             year_hours=rq.fmt_hours(this_year), count=count, stars="★" * stars or t(loc, "hours.no_star"),
             points=rq.fmt_hours(points))
    if nxt is not None:
        text += "\n" + t(loc, "hours.next_star", left=rq.fmt_hours(nxt - total), level=stars + 1)
    await _reply(ctx, ev, text)


async def cmd_tasks(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """我的任务: the volunteer's claimed requests, each with its details and buttons again."""
    tasks = await repo.tasks_of(ctx.s, person.id)
    if not tasks:
        await _reply(ctx, ev, t(ctx.locale_of(person), "tasks.none"))
    for req in tasks:
        await ctx.post(ev.channel, ev.chat_id, req.id, "detail")
        await audit.record(ctx, person.id, "claimer_details", req.id, req.resident_id, "tasks")


# ---- coordinators ----------------------------------------------------------------------------------

async def cmd_open(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/open: requests waiting for a volunteer, oldest first."""
    loc = ctx.locale_of(person)
    reqs = await repo.requests_with_status(ctx.s, [rq.OPEN])
    if not reqs:
        await _reply(ctx, ev, t(loc, "coord.none_open"))
        return
    lines = [t(loc, "coord.open_head", count=len(reqs))]
    for req in reqs:
        view = await view_of(ctx.s, ctx.cfg, req, loc)
        minutes = int((ctx.now - req.created_at).total_seconds() // 60)
        lines.append(t(loc, "coord.open_line", number=req.number, category=view.category, service=view.service,
                       community=view.community, team=view.team_name, minutes=minutes))
    await _reply(ctx, ev, "\n".join(lines))


async def cmd_assign(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/assign <number> <volunteer id or name>: 派单 by hand."""
    loc = ctx.locale_of(person)
    if len(args) != 2:
        await _reply(ctx, ev, t(loc, "coord.assign_usage"))
        return
    req = await repo.request_by_number(ctx.s, args[0])
    volunteer = await repo.find_volunteer(ctx.s, args[1])
    if req is None:
        await _reply(ctx, ev, t(loc, "coord.no_request", number=args[0]))
    elif volunteer is None:
        await _reply(ctx, ev, t(loc, "coord.no_volunteer", who=args[1]))
    elif not volunteer.trained:
        await _reply(ctx, ev, t(loc, "claim.not_trained"))
    elif await ops.claim(ctx, req, volunteer, via="assign", actor=person.id):
        await repo.add_route(ctx.s, req.id, req.team_id, "assign", ctx.now)
        await _reply(ctx, ev, t(loc, "coord.assigned", number=req.number, name=volunteer.name))
    else:
        await _reply(ctx, ev, t(loc, "coord.not_open", number=req.number, state=t(loc, f"status.{req.status}",
                                                                                  name="")))


async def cmd_history(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/history <number>: who did what, when."""
    loc = ctx.locale_of(person)
    req = await repo.request_by_number(ctx.s, args[0]) if args else None
    if req is None:
        await _reply(ctx, ev, t(loc, "coord.history_usage"))
        return
    view = await view_of(ctx.s, ctx.cfg, req, loc)
    lines = [t(loc, "coord.history_head", number=req.number, category=view.category, service=view.service,
               community=view.community, state=t(loc, f"status.{req.status}", name=view.volunteer_name or ""))]
    names: dict[str, str] = {}
    for item in await repo.history(ctx.s, req.id):
        actor = item.actor_id or ""
        if actor and actor not in names:
            p = await repo.get_person(ctx.s, actor)
            names[actor] = p.name if p else actor
        detail = " ".join(f"{k}={v}" for k, v in sorted(item.detail.items()))
        lines.append(f"{ctx.local(item.at):%m-%d %H:%M}  {t(loc, 'action.' + item.action)}  "
                     f"{names.get(actor, t(loc, 'action.system'))}  {detail}".rstrip())
    await _reply(ctx, ev, "\n".join(lines))


async def cmd_audit(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/audit <number>: who saw or got the personal data of a request and its resident, what, when, why.
    For the county center's coordinators only."""
    loc = ctx.locale_of(person)
    if person.unit != ctx.cfg.org.center.id:
        await _reply(ctx, ev, t(loc, "coord.audit_county_only"))
        return
    case_id = fc.parse_number(args[0]) if len(args) == 1 else None
    case = await case_repo.get_case(ctx.s, case_id) if case_id is not None else None
    req = await repo.request_by_number(ctx.s, args[0]) if len(args) == 1 and case is None else None
    if req is None and case is None:
        await _reply(ctx, ev, t(loc, "coord.no_request", number=args[0]) if args else t(loc, "coord.audit_usage"))
        return
    if case is not None:  # a crisis case: every reveal of its details
        number, entries = fc.number(case.id), await case_repo.case_audit_entries(ctx.s, case.resident_id)
    else:
        assert req is not None
        number, entries = req.number, await privacy_repo.audit_entries(ctx.s, req.id, req.resident_id)
    if not entries:
        await _reply(ctx, ev, t(loc, "coord.audit_none", number=number))
        return
    lines = [t(loc, "coord.audit_head", number=number, count=len(entries))]
    names: dict[str, str] = {}
    for e in entries:
        actor = e.actor_id or ""
        if actor and actor not in names:
            p = await repo.get_person(ctx.s, actor)
            staff = p is not None and (p.is_volunteer or p.is_coordinator)
            names[actor] = p.name if staff and p is not None else t(loc, "coord.audit_resident")  # no resident names
        what = _label(loc, f"audit.action.{e.action}", e.action)
        why = _label(loc, f"audit.reason.{e.reason}", e.reason)
        lines.append(t(loc, "coord.audit_line", at=f"{ctx.local(e.at):%m-%d %H:%M}", what=what, why=why,
                       who=names.get(actor, t(loc, "action.system"))))
    await _reply(ctx, ev, "\n".join(lines))


def _label(loc: str, key: str, fallback: str) -> str:
    """A catalog label for a code written by another part of the bot (falls back to the code itself)."""
    try:
        return t(loc, key)
    except KeyError:
        return fallback


async def cmd_roster(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/roster <team id>: who is on duty now."""
    loc = ctx.locale_of(person)
    teams = [ctx.cfg.team(a) for a in args] if args else list(ctx.cfg.teams)
    lines = []
    for team in teams:
        if team is None:
            await _reply(ctx, ev, t(loc, "coord.no_team", team=" ".join(args)))
            return
        names = "、".join(p.name for p in await duty.on_duty(ctx, team.id)) or t(loc, "coord.nobody")
        lines.append(f"{team.name}（{team.id}）：{names}")
    await _reply(ctx, ev, "\n".join(lines))


async def cmd_stats(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/stats: requests by category and status."""
    loc = ctx.locale_of(person)
    counts = await repo.request_counts(ctx.s)
    lines = [t(loc, "coord.stats_head")]
    for category in ctx.catalog.categories:
        c = counts.get(category.id, {})
        lines.append(t(loc, "coord.stats_line", category=category.name(loc), total=sum(c.values()),
                       open=c.get(rq.OPEN, 0), done=c.get(rq.FINISHED, 0), cancelled=c.get(rq.CANCELLED, 0)))
    await _reply(ctx, ev, "\n".join(lines))


async def cmd_lang(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/lang zh|en: the language the bot talks to this person in."""
    person.locale = norm_locale("en" if args and args[0].lower().startswith("en") else "zh_CN")
    await _reply(ctx, ev, t(person.locale, "lang.set"))


async def cmd_kflink(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/kflink <station id>: the contact link (QR code) a channel published for a station (WeCom kf)."""
    from sqlalchemy import select

    from storage.models import ChannelState

    loc = ctx.locale_of(person)
    station = ctx.catalog.station(args[0]) if args else None
    if station is None:
        await _reply(ctx, ev, t(loc, "wecom.kflink_usage", stations=", ".join(s.id for s in ctx.catalog.stations)))
        return
    key = f"contact_link:{station.id}"
    q = select(ChannelState.value).where(ChannelState.key == key).order_by(ChannelState.channel)
    urls = list((await ctx.s.execute(q)).scalars())
    if not urls:
        await _reply(ctx, ev, t(loc, "wecom.kflink_none", station=station.community))
    for url in urls:
        await _reply(ctx, ev, t(loc, "wecom.kflink", community=station.community, url=url))


async def cmd_help(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/help: what this person can do, by role."""
    loc = ctx.locale_of(person)
    parts = [t(loc, "help.resident")]
    if person.is_volunteer:
        parts.append(t(loc, "help.volunteer"))
    if person.is_coordinator:
        parts.append(t(loc, "help.coordinator"))
    await _reply(ctx, ev, "\n\n".join(parts))


VOLUNTEER = {"/on": cmd_on, "/off": cmd_off, "/hours": cmd_hours, "/tasks": cmd_tasks}
COORDINATOR = {"/open": cmd_open, "/assign": cmd_assign, "/history": cmd_history, "/audit": cmd_audit,
               "/roster": cmd_roster,
               "/stats": cmd_stats, "/linkcode": accounts.cmd_linkcode, "/bind": accounts.cmd_bind,
               "/unbind": accounts.cmd_unbind, "/kflink": cmd_kflink}
EVERYONE = {"/help": cmd_help, "/lang": cmd_lang, "/link": accounts.cmd_link,
            "/case": crisis.cmd_case}  # the case's people only (checked by the command)
KEYWORDS = {"kw.on_duty": "/on", "kw.off_duty": "/off", "kw.hours": "/hours", "kw.tasks": "/tasks",
            "kw.help": "/help"}


def parse(text: str) -> tuple[str, list[str]] | None:
    """A slash command or a volunteer keyword (值班, 下班 …) as (command, args)."""
    text = text.strip()
    if text.startswith("/"):
        head, *args = text.split()
        return head.split("@")[0].lower(), args
    for key, cmd in KEYWORDS.items():
        if text.lower() in words(key):
            return cmd, []
    return None


async def on_command(ctx: Ctx, ev: InboundEvent, person: Person) -> bool:
    """Run a staff command if the text is one this person may use; False if it is not a command."""
    parsed = parse(ev.text or "")
    if parsed is None:
        return False
    cmd, args = parsed
    loc = ctx.locale_of(person)
    handler: Command | None = EVERYONE.get(cmd)
    if handler is None and cmd in VOLUNTEER:
        handler = VOLUNTEER[cmd] if person.is_volunteer else None
        if handler is None:
            await _reply(ctx, ev, t(loc, "help.only_volunteers"))
            return True
    if handler is None and cmd in COORDINATOR:
        handler = COORDINATOR[cmd] if person.is_coordinator else None
        if handler is None:
            await _reply(ctx, ev, t(loc, "help.only_coordinators"))
            return True
    if handler is None:
        return False
    await handler(ctx, ev, person, args)
    return True


async def on_hours_text(ctx: Ctx, ev: InboundEvent, person: Person, data: dict[str, object]) -> None:
    """The volunteer typed corrected hours for a finished service."""
    loc = ctx.locale_of(person)
    req = await repo.get_request(ctx.s, int(str(data.get("request_id"))))
    if req is None or req.volunteer_id != person.id or req.status != rq.FINISHED:
        await ctx.clear_state()
        return
    text = (ev.text or "").strip().replace("小时", "").replace("h", "")
    try:
        hours = rq.half_hours(float(text))
    except ValueError:
        hours = -1
    step = lc.correct_hours(effects.facts_of(ctx, req), person.id, hours, effects.settings_of(ctx))
    if not step:  # out of bounds (it is theirs and finished: checked above)
        await _reply(ctx, ev, t(loc, "hours.bad", max=rq.fmt_hours(ctx.cfg.timings.hours_max)))
        return
    await effects.apply(ctx, req, step)
    await ctx.clear_state()
    total, _, points, _ = await repo.volunteer_totals(ctx.s, person.id, ctx.local().year)
    await _reply(ctx, ev, t(loc, "hours.confirmed", hours=rq.fmt_hours(hours), total=rq.fmt_hours(total),
                            points=rq.fmt_hours(points)))
