"""Queries for the platform channels: durable channel state, leases, link codes and group bindings."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ChannelState, GroupBinding, Identity, Lease, LinkCode, Person
from storage.sql import _insert, rowcount

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: codes are read aloud and retyped
CODE_LENGTH = 8


# ---- channel state ----------------------------------------------------------------------------

async def get_channel_state(s: AsyncSession, channel: str, key: str) -> str | None:
    """A value a channel stored (offset, cursor, token), or None."""
    row = await s.get(ChannelState, (channel, key))
    return row.value if row else None


async def set_channel_state(s: AsyncSession, channel: str, key: str, value: str, now: datetime) -> None:
    """Store (insert or replace) a channel's value."""
    stmt = _insert(s)(ChannelState).values(channel=channel, key=key, value=value, updated_at=now)
    await s.execute(stmt.on_conflict_do_update(index_elements=["channel", "key"],
                                               set_={"value": value, "updated_at": now}))


# ---- leases -------------------------------------------------------------------------------------

async def try_lease(s: AsyncSession, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
    """Take or renew a lease if it is free, expired or already ours (one conditional write)."""
    until = now + timedelta(seconds=ttl_seconds)
    taken = await rowcount(s, update(Lease).where(Lease.name == name, or_(Lease.holder == holder, Lease.until <= now))
                           .values(holder=holder, until=until))
    if taken == 1:
        return True
    stmt = _insert(s)(Lease).values(name=name, holder=holder, until=until).on_conflict_do_nothing()
    return await rowcount(s, stmt) == 1


async def release_lease(s: AsyncSession, name: str, holder: str) -> None:
    """Give a lease up (only if we hold it), so another worker takes over at once."""
    await s.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


async def lease_holder(s: AsyncSession, name: str, now: datetime) -> str | None:
    """Who holds a lease now, if anyone."""
    row = await s.get(Lease, name)
    return row.holder if row is not None and row.until > now else None


async def live_lease_holders(s: AsyncSession, prefix: str, now: datetime) -> list[str]:
    """Holders of the unexpired leases whose names start with `prefix` (workers taking part in a role)."""
    q = select(Lease.holder).where(Lease.name.startswith(prefix, autoescape=True), Lease.until > now)
    return list((await s.execute(q)).scalars())


# ---- link codes ------------------------------------------------------------------------------------

async def find_staff(s: AsyncSession, key: str) -> Person | None:
    """A volunteer or coordinator by id or exact name."""
    q = select(Person).where(Person.is_volunteer | Person.is_coordinator, (Person.id == key) | (Person.name == key))
    return (await s.execute(q.limit(1))).scalar_one_or_none()


async def issue_link_code(s: AsyncSession, person_id: str, issued_by: str, now: datetime,
                          valid: timedelta) -> str:
    """A new one-time code for a person; earlier unused codes of theirs stop working."""
    await s.execute(delete(LinkCode).where(LinkCode.person_id == person_id, LinkCode.used_at.is_(None)))
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    s.add(LinkCode(code=code, person_id=person_id, issued_by=issued_by, created_at=now, expires_at=now + valid))
    await s.flush()
    return code


async def use_link_code(s: AsyncSession, code: str, now: datetime) -> str | None:
    """Spend a code (conditional write: once, before it expires); the person it was for, or None."""
    code = code.strip().upper()
    spent = await rowcount(s, update(LinkCode).where(LinkCode.code == code, LinkCode.used_at.is_(None),
                                                     LinkCode.expires_at > now).values(used_at=now))
    if spent != 1:
        return None
    return (await s.execute(select(LinkCode.person_id).where(LinkCode.code == code))).scalar_one()


async def link_identity(s: AsyncSession, channel: str, external_id: str, chat_id: str, person: Person,
                        display_name: str) -> None:
    """Make a platform account belong to `person` (replacing a resident record made on first contact)."""
    row = await s.get(Identity, (channel, external_id))
    if row is None:
        s.add(Identity(channel=channel, external_id=external_id, person_id=person.id, chat_id=chat_id,
                       display_name=display_name))
    else:
        row.person_id, row.chat_id = person.id, chat_id
        row.display_name = display_name or row.display_name
    await s.flush()


# ---- group bindings -----------------------------------------------------------------------------

async def binding_of(s: AsyncSession, channel: str, chat_id: str) -> GroupBinding | None:
    """The team a group chat is bound to, if any."""
    return await s.get(GroupBinding, (channel, chat_id))


async def bind_group(s: AsyncSession, channel: str, chat_id: str, team_id: str) -> bool:
    """Bind a group to a team; False if it is already bound to another team (or concurrently was)."""
    existing = await binding_of(s, channel, chat_id)
    if existing is not None:
        return existing.team_id == team_id
    try:
        async with s.begin_nested():
            s.add(GroupBinding(channel=channel, chat_id=chat_id, team_id=team_id))
    except IntegrityError:
        return False
    return True


async def unbind_group(s: AsyncSession, channel: str, chat_id: str) -> str | None:
    """Unbind a group; the team it was bound to, or None if it was not bound."""
    existing = await binding_of(s, channel, chat_id)
    if existing is None:
        return None
    team_id = existing.team_id
    await s.delete(existing)
    await s.flush()
    return team_id
