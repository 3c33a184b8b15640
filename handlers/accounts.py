"""Accounts and groups: one-time link codes that map a platform account to a volunteer or coordinator,
and binding a group chat to a team (/bind, /unbind)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from flows.i18n import t
from flows.types import Message
from handlers.context import Ctx
from handlers.events import InboundEvent
from storage import channel_repo
from storage.models import Person, Team

LINK_CODE_VALID = timedelta(days=7)


async def _reply(ctx: Ctx, ev: InboundEvent, text: str) -> None:
    await ctx.say(ev.channel, ev.chat_id, Message(text))


async def cmd_linkcode(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/linkcode <person id or name>: a one-time code that person sends the bot with /link."""
    loc = ctx.locale_of(person)
    if ev.chat_type != "private":
        await _reply(ctx, ev, t(loc, "link.private_only"))
        return
    key = " ".join(args).strip()
    target = await channel_repo.find_staff(ctx.s, key) if key else None
    if target is None:
        await _reply(ctx, ev, t(loc, "link.who"))
        return
    code = await channel_repo.issue_link_code(ctx.s, target.id, person.id, ctx.now, LINK_CODE_VALID)
    await _reply(ctx, ev, t(loc, "link.issued", name=target.name, code=code, days=LINK_CODE_VALID.days))


async def cmd_link(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/link <code>: this account now belongs to the volunteer or coordinator the code was issued for."""
    loc = ctx.locale_of(person)
    if ev.chat_type != "private":
        await _reply(ctx, ev, t(loc, "link.private_only"))
        return
    person_id = await channel_repo.use_link_code(ctx.s, args[0], ctx.now) if args else None
    target = await ctx.s.get(Person, person_id) if person_id else None
    if target is None:
        await _reply(ctx, ev, t(loc, "link.bad"))
        return
    await channel_repo.link_identity(ctx.s, ev.channel, ev.user_id, ev.chat_id, target, ev.user_name[:100])
    roles = [t(loc, f"link.role_{r}") for r, on in (("volunteer", target.is_volunteer),
                                                    ("coordinator", target.is_coordinator)) if on]
    await _reply(ctx, ev, t(ctx.locale_of(target), "link.done", name=target.name, roles="、".join(roles)))


async def cmd_bind(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/bind <team id> (in a group): request cards for that team are posted in this group."""
    loc = ctx.locale_of(person)
    if ev.chat_type != "group":
        await _reply(ctx, ev, t(loc, "bind.group_only"))
        return
    team = await ctx.s.get(Team, args[0]) if args else None
    if team is None:
        teams = (await ctx.s.execute(select(Team.id).order_by(Team.id))).scalars()
        await _reply(ctx, ev, t(loc, "bind.which", teams=", ".join(teams)))
        return
    current = await channel_repo.binding_of(ctx.s, ev.channel, ev.chat_id)
    if current is not None and current.team_id != team.id:
        other = await ctx.s.get(Team, current.team_id)
        await _reply(ctx, ev, t(loc, "bind.taken", team=other.name if other else current.team_id))
        return
    if not await channel_repo.bind_group(ctx.s, ev.channel, ev.chat_id, team.id):
        await _reply(ctx, ev, t(loc, "bind.taken", team="?"))
        return
    await _reply(ctx, ev, t(loc, "bind.done" if current is None else "bind.already", team=team.name))


async def cmd_unbind(ctx: Ctx, ev: InboundEvent, person: Person, args: list[str]) -> None:
    """/unbind (in a group): this group no longer gets a team's request cards."""
    loc = ctx.locale_of(person)
    team_id = await channel_repo.unbind_group(ctx.s, ev.channel, ev.chat_id) if ev.chat_type == "group" else None
    team = await ctx.s.get(Team, team_id) if team_id else None
    await _reply(ctx, ev, t(loc, "bind.removed", team=team.name) if team else t(loc, "bind.not_bound"))
