"""Bring the database in line with config: teams, seeded people, memberships, group bindings."""
from __future__ import annotations

from sqlalchemy import delete, select, text

from bot.config import Config
from storage import repo
from storage.db import Database
from storage.models import GroupBinding, Identity, Person, Team

# pg_advisory_xact_lock(int, int) key of the config sync: a class of its own (conversations use 0x77770001)
SYNC_LOCK = (0x77770002, 1)


async def sync_config(db: Database, cfg: Config, now: object) -> None:
    """Upsert what config declares (idempotent; runs at every start). Workers starting at the same moment
    take turns (PostgreSQL: a transaction-scoped advisory lock; SQLite: the one writer), else on a new
    database each would insert the same teams and all but one would die of a duplicate key."""
    async with db.transaction() as s:
        if db.dialect == "postgresql":
            await s.execute(text("SELECT pg_advisory_xact_lock(:cls, :key)"),
                            {"cls": SYNC_LOCK[0], "key": SYNC_LOCK[1]})
        enabled = cfg.enabled_channels()
        # what is there already, read in a few queries (not one lookup per team, person and account)
        teams = {t.id: t for t in (await s.execute(select(Team))).scalars()}
        coords = {c.id: c for c in cfg.people.coordinators}
        vols = {v.id: v for v in cfg.people.volunteers}
        staff_ids = sorted(set(coords) | set(vols))
        people = {p.id: p for p in (await s.execute(select(Person).where(Person.id.in_(staff_ids)))).scalars()}
        userids = [u for u in [*(v.wecom_userid for v in vols.values()), *(c.wecom_userid for c in coords.values())]
                   if u]
        accounts = {(ch, ext) for ch, ext in (await s.execute(select(Identity.channel, Identity.external_id)
                                                              .where(Identity.external_id.in_(staff_ids + userids))))}
        for team in cfg.teams:
            await repo.upsert_team(s, team.id, team.name, team.unit, cfg.unit_level(team.unit), known=teams)
        for pid in staff_ids:
            v, c = vols.get(pid), coords.get(pid)
            await repo.upsert_staff(s, pid, (v or c).name, (v.phone if v else None) or (c.phone if c else None),  # type: ignore[union-attr]
                                    now, volunteer=v is not None, coordinator=c is not None,  # type: ignore[arg-type]
                                    trained=bool(v and v.trained) or (v is None), unit=c.unit if c else None,
                                    known=people)
        await s.flush()  # the people before their accounts (no ORM relationship orders these inserts)
        for pid in staff_ids:
            v, c = vols.get(pid), coords.get(pid)
            name = (v or c).name  # type: ignore[union-attr]
            if "simulator" in enabled:  # the simulator knows every configured person
                await repo.ensure_identity(s, "simulator", pid, pid, pid, name, known=accounts)
            userid = (v.wecom_userid if v else None) or (c.wecom_userid if c else None)
            if userid:  # a corp member of the WeCom app: their userid is also their 1:1 chat
                await repo.ensure_identity(s, "wecom", userid, pid, userid, name, known=accounts)
        await repo.set_memberships(s, {(t.id, m) for t in cfg.teams for m in t.members})
        # groups of a channel that is off get no binding: nothing is posted there, so no "undeliverable" alert
        configured = {(ch, chat): t.id for t in cfg.teams for ch, chat in t.groups.items() if ch in enabled}
        for (ch, chat), team_id in configured.items():
            row = await s.get(GroupBinding, (ch, chat))
            if row is None:
                s.add(GroupBinding(channel=ch, chat_id=chat, team_id=team_id))
            else:
                row.team_id = team_id
        # a simulator group dropped from config disappears with it (real groups are bound by command)
        rows = (await s.execute(select(GroupBinding).where(GroupBinding.channel == "simulator"))).scalars()
        stale = [r.chat_id for r in rows if ("simulator", r.chat_id) not in configured]
        if stale:
            await s.execute(delete(GroupBinding).where(GroupBinding.channel == "simulator",
                                                       GroupBinding.chat_id.in_(stale)))
