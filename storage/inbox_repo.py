"""The inbox's statements (SQLAlchemy Core, built once): take updates on in one multi-row insert, delete the
handled ones in one statement, take a dead worker's rows over."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InboxEvent

_INBOX = cast(Table, InboxEvent.__table__)
_ADD = {name: dialect.insert(_INBOX).on_conflict_do_nothing(index_elements=["channel", "event_id"])
        .returning(_INBOX.c.id, _INBOX.c.channel, _INBOX.c.event_id)
        for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}
_DONE = delete(_INBOX).where(_INBOX.c.id.in_(bindparam("ids", expanding=True)))
_HOLDERS = select(_INBOX.c.holder).distinct()
_TAKE = (update(_INBOX).where(_INBOX.c.holder.in_(bindparam("dead", expanding=True)))
         .values(holder=bindparam("me"))
         .returning(_INBOX.c.id, _INBOX.c.channel, _INBOX.c.event_id, _INBOX.c.lane, _INBOX.c.payload))


@dataclass(frozen=True, slots=True)
class Row:
    """An inbox row to handle."""

    id: int
    channel: str
    event_id: str
    lane: str
    payload: str


async def add(s: AsyncSession, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert updates (dicts with every column but id); the new rows' ids by (channel, event_id). An update
    already in the inbox (the platform sent it again before it was handled) is left out."""
    result = await s.execute(_ADD[s.get_bind().dialect.name], rows)
    return {(channel, event_id): id_ for id_, channel, event_id in result.all()}


async def done(s: AsyncSession, ids: list[int]) -> None:
    """Forget handled rows."""
    await s.execute(_DONE, {"ids": ids})


async def holders(s: AsyncSession) -> list[str]:
    """The workers that hold inbox rows."""
    return list((await s.execute(_HOLDERS)).scalars())


async def take_over(s: AsyncSession, dead: list[str], me: str) -> list[Row]:
    """Give this worker the rows of workers that are gone, oldest first."""
    result = await s.execute(_TAKE, {"dead": dead, "me": me})
    return sorted((Row(*r) for r in result.all()), key=lambda r: r.id)
