"""Who is on duty: the team's weekly roster, adjusted by volunteers switching on/off (值班/下班)."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from storage import repo
from storage.models import Person

if TYPE_CHECKING:
    from bot.config import Config, TeamConfig
    from handlers.context import Ctx

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def rostered(team: TeamConfig, local_now: datetime) -> set[str]:
    """Volunteers the roster puts on duty at this local time."""
    day, clock = WEEKDAYS[local_now.weekday()], local_now.time()
    return {v for slot in team.roster if day in slot.days and slot.start <= clock < slot.end
            for v in slot.volunteers}


def shift_end(cfg: Config, person_id: str, local_now: datetime) -> datetime:
    """When the current shift ends for this person: their slot's end, else any slot of their teams,
    else midnight."""
    day, clock = WEEKDAYS[local_now.weekday()], local_now.time()
    ends_own: list[time] = []
    ends_any: list[time] = []
    for team in cfg.teams:
        if person_id not in team.members:
            continue
        for slot in team.roster:
            if day in slot.days and slot.start <= clock < slot.end:
                (ends_own if person_id in slot.volunteers else ends_any).append(slot.end)
    chosen = ends_own or ends_any
    if chosen:
        return datetime.combine(local_now.date(), max(chosen))
    return datetime.combine(local_now.date() + timedelta(days=1), time(0, 0))


async def on_duty(ctx: Ctx, team_id: str) -> list[Person]:
    """The team's members on duty now (roster plus overrides, trained volunteers only)."""
    team = ctx.cfg.team(team_id)
    if team is None:
        return []
    members = await repo.team_members(ctx.s, team_id)
    base = rostered(team, ctx.local())
    overrides = await repo.duty_overrides(ctx.s, [m.id for m in members], ctx.now)
    return [m for m in members if m.trained and overrides.get(m.id, m.id in base)]
